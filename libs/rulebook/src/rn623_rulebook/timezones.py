"""Brazilian states (UFs), their IBGE codes and IANA time zones.

Brazil has four standard offsets (UTC-2 to UTC-5) spread over sixteen IANA zones;
the zones differ in their history (daylight-saving time, which Brazil abolished in
2019, and several offset changes), so an operator's calendar must carry the exact
zone, not just an offset.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

__all__ = [
    "BRAZIL_TIMEZONES",
    "BRAZIL_UFS",
    "UF_IBGE_CODES",
    "timezone_for_uf",
]

BRAZIL_TIMEZONES: Final[tuple[str, ...]] = (
    "America/Sao_Paulo",
    "America/Manaus",
    "America/Cuiaba",
    "America/Campo_Grande",
    "America/Porto_Velho",
    "America/Boa_Vista",
    "America/Rio_Branco",
    "America/Eirunepe",
    "America/Noronha",
    "America/Belem",
    "America/Fortaleza",
    "America/Recife",
    "America/Araguaina",
    "America/Maceio",
    "America/Bahia",
    "America/Santarem",
)

# IBGE state codes: the first two digits of every municipality code of the state.
UF_IBGE_CODES: Final = MappingProxyType(
    {
        "RO": "11",
        "AC": "12",
        "AM": "13",
        "RR": "14",
        "PA": "15",
        "AP": "16",
        "TO": "17",
        "MA": "21",
        "PI": "22",
        "CE": "23",
        "RN": "24",
        "PB": "25",
        "PE": "26",
        "AL": "27",
        "SE": "28",
        "BA": "29",
        "MG": "31",
        "ES": "32",
        "RJ": "33",
        "SP": "35",
        "PR": "41",
        "SC": "42",
        "RS": "43",
        "MS": "50",
        "MT": "51",
        "GO": "52",
        "DF": "53",
    }
)

BRAZIL_UFS: Final[tuple[str, ...]] = tuple(sorted(UF_IBGE_CODES))

# Default zone per UF (the zone of the state capital, following the tz database's
# zone.tab). Some states span zones: western Amazonas uses America/Eirunepe
# (UTC-5), western Pará America/Santarem and Fernando de Noronha (PE)
# America/Noronha (UTC-2); operators there must set their zone explicitly.
_UF_TIMEZONES: Final = MappingProxyType(
    {
        "AC": "America/Rio_Branco",
        "AL": "America/Maceio",
        "AM": "America/Manaus",
        "AP": "America/Belem",
        "BA": "America/Bahia",
        "CE": "America/Fortaleza",
        "DF": "America/Sao_Paulo",
        "ES": "America/Sao_Paulo",
        "GO": "America/Sao_Paulo",
        "MA": "America/Fortaleza",
        "MG": "America/Sao_Paulo",
        "MS": "America/Campo_Grande",
        "MT": "America/Cuiaba",
        "PA": "America/Belem",
        "PB": "America/Fortaleza",
        "PE": "America/Recife",
        "PI": "America/Fortaleza",
        "PR": "America/Sao_Paulo",
        "RJ": "America/Sao_Paulo",
        "RN": "America/Fortaleza",
        "RO": "America/Porto_Velho",
        "RR": "America/Boa_Vista",
        "RS": "America/Sao_Paulo",
        "SC": "America/Sao_Paulo",
        "SE": "America/Maceio",
        "SP": "America/Sao_Paulo",
        "TO": "America/Araguaina",
    }
)


def timezone_for_uf(uf: str) -> str:
    """Return the default IANA time zone of a Brazilian state (that of its capital)."""
    key = uf.strip().upper()
    try:
        return _UF_TIMEZONES[key]
    except KeyError:
        raise ValueError(f"unknown Brazilian UF: {uf!r}") from None
