"""Packaged municipal holiday data: coverage, validation and cross-checks."""

from __future__ import annotations

from datetime import date, timedelta
from importlib import resources

import pytest
import yaml
from holidays.countries.brazil import Brazil
from pydantic import ValidationError

from rn623_rulebook.calendars import CalendarSpec, OptionalDay, _classify_optional, calendar_for
from rn623_rulebook.municipal import (
    DATA_RESOURCE,
    HolidayRule,
    load_municipal_data,
    municipal_data,
    municipality,
)
from rn623_rulebook.timezones import UF_IBGE_CODES

pytestmark = pytest.mark.unit

# IBGE codes of the 27 capitals (checked against the IBGE municipality table).
CAPITALS = {
    "1200401": ("Rio Branco", "AC"),
    "2704302": ("Maceió", "AL"),
    "1600303": ("Macapá", "AP"),
    "1302603": ("Manaus", "AM"),
    "2927408": ("Salvador", "BA"),
    "2304400": ("Fortaleza", "CE"),
    "5300108": ("Brasília", "DF"),
    "3205309": ("Vitória", "ES"),
    "5208707": ("Goiânia", "GO"),
    "2111300": ("São Luís", "MA"),
    "5103403": ("Cuiabá", "MT"),
    "5002704": ("Campo Grande", "MS"),
    "3106200": ("Belo Horizonte", "MG"),
    "1501402": ("Belém", "PA"),
    "2507507": ("João Pessoa", "PB"),
    "4106902": ("Curitiba", "PR"),
    "2611606": ("Recife", "PE"),
    "2211001": ("Teresina", "PI"),
    "3304557": ("Rio de Janeiro", "RJ"),
    "2408102": ("Natal", "RN"),
    "4314902": ("Porto Alegre", "RS"),
    "1100205": ("Porto Velho", "RO"),
    "1400100": ("Boa Vista", "RR"),
    "4205407": ("Florianópolis", "SC"),
    "3550308": ("São Paulo", "SP"),
    "2800308": ("Aracaju", "SE"),
    "1721000": ("Palmas", "TO"),
}

YEARS = range(2015, 2041)


def _raw() -> dict[str, object]:
    text = resources.files("rn623_rulebook").joinpath(DATA_RESOURCE).read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


def test_all_27_capitals_are_covered_with_their_ibge_codes() -> None:
    data = municipal_data()
    assert {code: (m.name, m.uf) for code, m in data.municipalities.items()} == CAPITALS
    assert {uf for _, uf in CAPITALS.values()} == set(UF_IBGE_CODES)


def test_every_holiday_has_a_source_and_a_confidence() -> None:
    for m in municipal_data().municipalities.values():
        for rule in m.holidays:
            assert rule.source.strip(), (m.name, rule.name)
            assert rule.confidence in {"high", "medium"}


def test_brasilia_has_no_municipal_holidays() -> None:
    brasilia = municipality("5300108")
    assert brasilia is not None
    assert brasilia.holidays == ()
    assert brasilia.note is not None
    assert "python-holidays" in brasilia.note


def _state_days(uf: str) -> set[date]:
    """National and (corrected) state holidays of a UF, 2015-2040."""
    state = calendar_for(CalendarSpec(uf=uf))
    return {d for d, _ in state.holidays_between(date(2015, 1, 1), date(2040, 12, 31))}


def test_municipal_days_do_not_duplicate_national_or_state_days() -> None:
    for code, m in municipal_data().municipalities.items():
        state = _state_days(m.uf)
        for rule in m.holidays:
            days = [rule.date_in(y) for y in YEARS]
            clashes = [d for d in days if d is not None and d in state]
            # A day may fall on another holiday now and then (8 Apr 2039 is Good
            # Friday), but a rule python-holidays already has would clash every year.
            assert len(clashes) < 3, (code, m.name, rule.name, clashes)


def test_sao_paulo_city_matches_python_holidays_sao_paulo_capital() -> None:
    ours = calendar_for(CalendarSpec(municipality_ibge="3550308"))
    theirs = Brazil(subdiv="São Paulo Capital", years=range(1996, 2041), categories=("public",))
    ours_days = {d for d, _ in ours.holidays_between(date(1996, 1, 1), date(2040, 12, 31))}
    assert ours_days == set(theirs)


def test_state_corrections() -> None:
    data = municipal_data()
    assert {(c.uf, c.month, c.day) for c in data.state_corrections} == {
        ("AP", 7, 25),
        ("CE", 8, 15),
        ("GO", 10, 24),
    }
    ap = calendar_for(CalendarSpec(uf="AP"))
    assert ap.holiday_name(date(2018, 7, 25)) == "São Tiago"
    for year in range(2019, 2041):
        assert ap.holiday_name(date(year, 7, 25)) is None
    ce = calendar_for(CalendarSpec(uf="CE"))
    fortaleza = calendar_for(CalendarSpec(municipality_ibge="2304400"))
    for year in YEARS:
        assert ce.holiday_name(date(year, 8, 15)) is None
        assert fortaleza.holiday_name(date(year, 8, 15)) == "Nossa Senhora da Assunção"
    # The state's other holidays stay.
    assert ce.holiday_name(date(2025, 3, 19)) == "São José"
    assert ce.holiday_name(date(2025, 3, 25)) == "Abolição da escravidão no Ceará"


def test_uncertain_entries_carry_a_note() -> None:
    data = municipal_data()
    assert data.uncertain_state_facts
    for fact in data.uncertain_state_facts:
        assert fact.note
    uncertain = [u for m in data.municipalities.values() for u in m.uncertain]
    assert len(uncertain) >= 20
    assert all(u.note for u in uncertain)


def test_uncertain_days_are_not_also_listed_as_holidays() -> None:
    for m in municipal_data().municipalities.values():
        fixed = {(r.month, r.day) for r in m.holidays if r.is_fixed}
        movable = {r.movable for r in m.holidays if r.movable is not None}
        for u in m.uncertain:
            if u.month is not None:
                assert (u.month, u.day) not in fixed, (m.name, u.name)
            if u.movable is not None:
                assert u.movable not in movable, (m.name, u.name)


def test_since_and_until_are_applied() -> None:
    sp_city = calendar_for(CalendarSpec(municipality_ibge="3550308"))
    assert sp_city.holiday_name(date(2003, 11, 20)) is None
    assert sp_city.holiday_name(date(2004, 11, 20)) == "Dia da Consciência Negra"
    assert sp_city.holiday_name(date(2023, 11, 20)) == "Dia da Consciência Negra"
    # From 2024 the day is national (python-holidays' name).
    assert (
        sp_city.holiday_name(date(2024, 11, 20)) == "Dia Nacional de Zumbi e da Consciência Negra"
    )
    vitoria = calendar_for(CalendarSpec(municipality_ibge="3205309"))
    assert vitoria.holiday_name(date(2019, 4, 29)) == "Nossa Senhora da Penha"  # Easter 21 Apr + 8
    assert vitoria.holiday_name(date(2025, 4, 28)) == "Nossa Senhora da Penha"  # from the state


def test_movable_rules() -> None:
    corpus = HolidayRule(
        name="Corpus Christi", movable="corpus_christi", source="x", confidence="high"
    )
    assert corpus.date_in(2025) == date(2025, 6, 19)
    assert corpus.date_in(2026) == date(2026, 6, 4)
    penha = HolidayRule(name="Penha", easter_offset=8, source="x", confidence="high", until=2019)
    assert penha.date_in(2019) == date(2019, 4, 29)
    assert penha.date_in(2020) is None
    leap = HolidayRule(name="Leap", month=2, day=29, source="x", confidence="medium")
    assert leap.date_in(2024) == date(2024, 2, 29)
    assert leap.date_in(2025) is None


def test_easter_matches_python_holidays_good_friday() -> None:
    from rn623_rulebook.municipal import easter_sunday

    years = range(1900, 2101)  # python-holidays' range ends in 2100
    good_fridays = {
        d
        for d, name in Brazil(years=years, language="pt_BR").items()
        if "Sexta-feira Santa" in name.split("; ")
    }
    assert good_fridays == {easter_sunday(y) - timedelta(days=2) for y in years}


def test_every_optional_day_of_python_holidays_is_classified() -> None:
    optional = Brazil(years=YEARS, categories=("optional",))
    for year in YEARS:
        kinds = [_classify_optional(d) for d in optional if d.year == year]
        assert sorted(k for k in kinds if k is not None) == sorted(OptionalDay), year


# -- validation -----------------------------------------------------------------------


def _with(mutate: object) -> str:
    data = _raw()
    assert callable(mutate)
    mutate(data)
    return yaml.safe_dump(data, allow_unicode=True)


def _first_holiday(data: dict[str, object]) -> dict[str, object]:
    municipalities = data["municipalities"]
    assert isinstance(municipalities, dict)
    return municipalities["3550308"]["holidays"][0]  # type: ignore[no-any-return]


def _set_code(data: dict[str, object], new: str) -> None:
    municipalities = data["municipalities"]
    assert isinstance(municipalities, dict)
    municipalities[new] = municipalities.pop("3550308")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: _set_code(d, "355030"), "7 digits"),
        (lambda d: _set_code(d, "3350308"), "does not belong to SP"),
        (lambda d: _first_holiday(d).update(source=" "), "source"),
        (lambda d: _first_holiday(d).update(day=32), "day"),
        (lambda d: _first_holiday(d).update(month=2, day=30), "day is out of range"),
        (lambda d: _first_holiday(d).update(movable="corpus_christi"), "exactly one of"),
        (
            lambda d: _first_holiday(d).update(since=2030, until=2020),
            "since must not be after until",
        ),
        (lambda d: _first_holiday(d).update(confidence="low"), "confidence"),
        (lambda d: _first_holiday(d).update(unexpected=1), "Extra inputs"),
        (lambda d: d.update(schema_version=2), "schema_version"),
    ],
)
def test_invalid_data_is_refused(mutate: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        load_municipal_data(_with(mutate))


def test_the_packaged_file_round_trips() -> None:
    assert load_municipal_data(yaml.safe_dump(_raw(), allow_unicode=True)) == municipal_data()


def test_24_october_is_a_holiday_of_goiania_only() -> None:
    from datetime import date

    from rn623_rulebook.calendars import CalendarSpec, calendar_for

    goiania = calendar_for(CalendarSpec(uf="GO", municipality_ibge="5208707"))
    aparecida = calendar_for(CalendarSpec(uf="GO", municipality_ibge="5201405"))
    assert not goiania.is_business_day(date(2025, 10, 24))
    assert aparecida.is_business_day(date(2025, 10, 24))
    assert aparecida.add_business_days(date(2025, 10, 23), 1) == date(2025, 10, 24)
    assert goiania.add_business_days(date(2025, 10, 23), 1) == date(2025, 10, 27)


def test_the_event_contracts_know_the_same_brazilian_time_zones() -> None:
    # operator.upserted validates time zones without depending on the rulebook: keep in step
    from typing import get_args

    from rn623_events.contracts.operators import BrazilTimeZone
    from rn623_rulebook.timezones import BRAZIL_TIMEZONES

    assert set(get_args(BrazilTimeZone)) == set(BRAZIL_TIMEZONES)
