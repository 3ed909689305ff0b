"""Who a campaign reaches: the audience's conditions, as a value and as SQL.

Pure logic, no I/O. Conditions are ANDed, the values of one list ORed; no condition is
every active device of the app. `platforms`, `app_versions`, `user_ids` and `topics`
match exact values; `locales` a whole tag or its language prefix (`de` matches `de`,
`de-AT` and `de_AT`, case aside); `min_app_version` compares dotted numbers (`4.10` >
`4.9`, `4.2` == `4.2.0`); `seen_within_s` keeps devices active that recently."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

VERSION_PARTS = 4  # dotted numbers compared on their first four parts


@dataclass(frozen=True)
class Audience:
    platforms: tuple[str, ...] = ()
    locales: tuple[str, ...] = ()
    app_versions: tuple[str, ...] = ()
    min_app_version: str | None = None
    topics: tuple[str, ...] = ()
    user_ids: tuple[str, ...] = ()
    seen_within_s: int | None = None

    def to_json(self) -> dict:
        """Only the conditions set, as the request named them."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items() if v}

    @classmethod
    def from_json(cls, data: dict) -> Audience:
        values: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v
            for k, v in data.items()
            if k in cls.__dataclass_fields__
        }
        return cls(**values)


def version_key(version: str) -> tuple[int, ...]:
    """`4.10.1` -> (4, 10, 1, 0): dotted numbers as a comparable tuple; a part that is
    not a number counts by its leading digits (`2-beta` -> 2), none -> 0."""
    parts = []
    for part in version.split(".")[:VERSION_PARTS]:
        digits = ""
        for ch in part:
            if not ch.isdigit():
                break
            digits += ch
        parts.append(int(digits) if digits else 0)
    return tuple(parts + [0] * (VERSION_PARTS - len(parts)))


def _version_part_sql(column: str, i: int) -> str:
    # MariaDB: the i-th dotted part (1-based) of the column padded with .0s, as a number
    # (CAST of '2-beta' takes its leading digits, as version_key does)
    padded = f"CONCAT({column}, '{'.0' * VERSION_PARTS}')"
    return f"CAST(SUBSTRING_INDEX(SUBSTRING_INDEX({padded}, '.', {i}), '.', -1) AS UNSIGNED)"


def _like_escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def where(audience: Audience, device: str = "d") -> tuple[str, list[object]]:
    """SQL conditions on the devices table (aliased `device`) for the audience, ANDed,
    with their arguments; "" when the audience has none."""
    parts: list[str] = []
    args: list[object] = []

    def one_of(column: str, values: tuple[str, ...]) -> None:
        parts.append(f"{device}.{column} IN ({', '.join(['%s'] * len(values))})")
        args.extend(values)

    if audience.platforms:
        one_of("platform", audience.platforms)
    if audience.app_versions:
        one_of("app_version", audience.app_versions)
    if audience.user_ids:
        one_of("user_id", audience.user_ids)
    if audience.locales:
        tag = f"REPLACE(LOWER({device}.locale), '_', '-')"
        ors = []
        for locale in audience.locales:
            value = locale.lower().replace("_", "-")
            ors.append(f"({tag} = %s OR {tag} LIKE %s)")
            args += [value, _like_escaped(value) + "-%"]
        parts.append("(" + " OR ".join(ors) + ")")
    if audience.min_app_version is not None:
        column = f"{device}.app_version"
        row = ", ".join(_version_part_sql(column, i) for i in range(1, VERSION_PARTS + 1))
        marks = ", ".join(["%s"] * VERSION_PARTS)
        parts.append(f"({column} IS NOT NULL AND ({row}) >= ({marks}))")
        args += list(version_key(audience.min_app_version))
    if audience.seen_within_s is not None:
        parts.append(f"{device}.last_active_at >= UTC_TIMESTAMP(6) - INTERVAL %s SECOND")
        args.append(audience.seen_within_s)
    if audience.topics:
        marks = ", ".join(["%s"] * len(audience.topics))
        parts.append(
            f"EXISTS (SELECT 1 FROM device_topics t WHERE t.device_id = {device}.id"
            f" AND t.topic IN ({marks}))"
        )
        args.extend(audience.topics)
    return " AND ".join(parts), args
