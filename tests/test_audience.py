"""The audience's pure parts: dotted version numbers, and the SQL a condition makes
(what each condition matches on real rows is tests/test_campaigns.py's)."""

from __future__ import annotations

from dispatcher.campaigns.audience import Audience, version_key, where


def test_versions_compare_as_dotted_numbers():
    assert version_key("4.10") > version_key("4.9")
    assert version_key("4.2") == version_key("4.2.0") == (4, 2, 0, 0)
    assert version_key("10") > version_key("9.99.99")
    assert version_key("2.1-beta") == (2, 1, 0, 0)
    assert version_key("1.2.3.4.5") == (1, 2, 3, 4)


def test_no_condition_is_every_device():
    assert where(Audience()) == ("", [])


def test_conditions_are_anded_and_values_ored():
    sql, args = where(Audience(platforms=("ios", "web"), user_ids=("u1",)))
    assert sql == "d.platform IN (%s, %s) AND d.user_id IN (%s)"
    assert args == ["ios", "web", "u1"]


def test_a_locale_matches_itself_or_as_a_language_prefix():
    sql, args = where(Audience(locales=("de_AT", "fr")))
    assert args == ["de-at", "de-at-%", "fr", "fr-%"]
    assert sql.count(" OR ") == 3


def test_an_audience_survives_its_json():
    a = Audience(platforms=("ios",), min_app_version="4.2", seen_within_s=60)
    assert a.to_json() == {"platforms": ["ios"], "min_app_version": "4.2", "seen_within_s": 60}
    assert Audience.from_json(a.to_json()) == a
