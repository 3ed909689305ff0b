"""A batch's items: the fast path for plain items (push_api.campaign_schemas.plain_item)
takes only what NotificationIn takes, and makes the same values of it."""

from __future__ import annotations

from hypothesis import event, given, settings
from hypothesis import strategies as st

from dispatcher.batch import Item
from push_api.campaign_schemas import _NOTIFICATION, plain_item

texts = st.one_of(
    st.none(),
    st.text(max_size=5),
    st.just("t" * 4096),
    st.just("t" * 4097),
    st.integers(),
    st.booleans(),
)
fine = st.one_of(st.none(), st.text(max_size=5))
targets = st.one_of(
    st.fixed_dictionaries({"device_id": st.sampled_from(["42", "a" * 40, "a" * 41, ""])}),
    st.fixed_dictionaries({"user_id": st.sampled_from(["ann", "a" * 128, "a" * 129, ""])}),
    st.fixed_dictionaries({"topic": st.sampled_from(["deals", "bad topic", "t" * 65, ""])}),
    st.dictionaries(
        st.sampled_from(["device_id", "user_id", "topic", "x"]),
        st.one_of(st.text(max_size=3), st.integers()),
        max_size=2,
    ),
    st.none(),
    st.text(max_size=2),
)
items = st.fixed_dictionaries(
    {"to": targets},
    optional={
        "title": st.one_of(fine, texts),
        "body": st.one_of(fine, texts),
        "data": st.one_of(
            st.none(),
            st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
            st.just({1: 2}),
            st.text(max_size=2),
        ),
        "ttl": st.one_of(
            st.integers(-2, 2_500_000), st.none(), st.just("60"), st.just(6.0), st.booleans()
        ),
        "collapse_key": st.one_of(fine, texts, st.just("c" * 64), st.just("c" * 65)),
        "priority": st.sampled_from(["high", "normal", "urgent", None, 1]),
        "wake": st.sampled_from(["alert", "silent", "none", "loud", None]),
        "extra": st.integers(),
    },
)


@settings(max_examples=1000, deadline=None)
@given(items)
def test_plain_items_are_what_the_schema_makes_of_them(raw):
    plain = plain_item(raw)
    event("fast path" if plain is not None else "the schema")
    if plain is None:
        return
    loaded = _NOTIFICATION.load(raw)  # raises if the fast path took what it should not
    assert plain == Item(loaded.target, loaded.content)


def test_the_usual_item_takes_the_fast_path():
    raw = {"to": {"device_id": "7"}, "title": "Order shipped", "data": {"order": "1"}}
    assert plain_item(raw) is not None
    assert plain_item({**raw, "ttl": "60"}) is None  # a string: the schema judges it


valid_items = st.fixed_dictionaries(
    {"to": st.sampled_from([{"device_id": "7"}, {"user_id": "ann"}, {"topic": "deals.x"}])},
    optional={
        "title": fine,
        "body": fine,
        "data": st.one_of(st.none(), st.dictionaries(st.text(max_size=3), st.text(max_size=3))),
        "ttl": st.integers(1, 2_419_200),
        "collapse_key": st.one_of(st.none(), st.text(min_size=1, max_size=64)),
        "priority": st.sampled_from(["high", "normal"]),
        "wake": st.sampled_from(["alert", "silent", "none"]),
    },
)


@settings(max_examples=300, deadline=None)
@given(valid_items)
def test_valid_items_take_the_fast_path_to_the_same_values(raw):
    plain = plain_item(raw)
    assert plain is not None
    loaded = _NOTIFICATION.load(raw)
    assert plain == Item(loaded.target, loaded.content)
