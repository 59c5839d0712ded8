"""Normalization and validation of a beneficiary's CPF, phone numbers and e-mail (pure, no I/O).

Every function either returns the canonical form or raises :class:`InvalidField`, whose
message names the field and the reason but never the submitted value: CPFs, phone numbers
and e-mail addresses are personal data and must not leak into logs or error responses.
Each ``normalize_*`` function takes a keyword ``field`` (the name reported in the error,
e.g. ``beneficiary.whatsapp``); surrounding whitespace is always ignored.

CPF
    Returned as 11 digits. Accepted inputs: bare digits or the usual mask
    ``000.000.000-00`` (each separator optional). Leading zeros are significant: a
    10-digit value (a CPF that went through an integer column) is refused, not padded.
    Both mod-11 check digits must match and all-equal numbers (``111.111.111-11``), which
    pass the check-digit test, are refused.

Phone numbers
    Brazilian numbers are returned in E.164 form, ``+55`` + DDD (2 digits) + subscriber
    number. Accepted inputs (spaces, dots, hyphens and parentheses are ignored):

    * ``DD NNNNNNNNN`` / ``DD NNNNNNNN`` - national form, e.g. ``(11) 91234-5678``;
    * ``NNNNNNNNN`` / ``NNNNNNNN`` - subscriber only, when ``default_ddd`` is given;
    * ``0 DD ...`` and ``0 CC DD ...`` - trunk prefix, optionally with a long-distance
      carrier code (``CC``, also written literally as ``0xx``);
    * ``55 DD ...`` and ``+55 DD ...`` - with the country code.

    The DDD must be one of the 67 ANATEL area codes (:data:`VALID_DDDS`). A subscriber
    number starting with 2-5 is a landline and must have 8 digits. One starting with 6-9 is
    a mobile number: mobiles have had 9 digits starting with ``9`` nationwide since the end
    of 2016 (ANATEL Resolution 553/2010), so an 8-digit mobile number gets the ninth digit
    ``9`` prepended and a 9-digit number must start with ``9``. Subscriber numbers starting
    with 0 or 1 (trunk prefixes, public-utility codes) are refused.

    Foreign numbers must be written with a leading ``+`` and are accepted as-is (digits
    only, ``+`` kept) if they look like E.164: a country code not starting with 0 and 7 to
    15 digits in all. Their national numbering plan is not checked. The ``00`` + carrier
    international prefix is not supported.

E-mail addresses
    Surrounding whitespace is stripped; the address must then be ASCII, at most 254
    characters, ``local@domain`` with a dot-atom local part (at most 64 characters, RFC 5322
    ``atext`` characters, no leading, trailing or consecutive dots) and a host name of at
    least two labels (letters, digits, hyphens; a top-level label that is not all digits).
    Quoted local parts, address literals (``[1.2.3.4]``) and internationalized addresses
    are refused. The domain is lower-cased; the local part keeps its case (it is
    case-sensitive by the RFC). No DNS lookup is done.
"""

from __future__ import annotations

import re

__all__ = [
    "VALID_DDDS",
    "InvalidField",
    "cpf_check_digits",
    "is_mobile",
    "is_valid_cpf",
    "normalize_cpf",
    "normalize_email",
    "normalize_phone",
]

BRAZIL_COUNTRY_CODE = "55"
"""ITU country code of Brazil."""

VALID_DDDS: frozenset[str] = frozenset(
    [
        *(str(n) for n in range(11, 20)),  # SP
        "21", "22", "24",  # RJ
        "27", "28",  # ES
        "31", "32", "33", "34", "35", "37", "38",  # MG
        "41", "42", "43", "44", "45", "46",  # PR
        "47", "48", "49",  # SC
        "51", "53", "54", "55",  # RS
        "61",  # DF
        "62", "64",  # GO
        "63",  # TO
        "65", "66",  # MT
        "67",  # MS
        "68",  # AC
        "69",  # RO
        "71", "73", "74", "75", "77",  # BA
        "79",  # SE
        "81", "87",  # PE
        "82",  # AL
        "83",  # PB
        "84",  # RN
        "85", "88",  # CE
        "86", "89",  # PI
        "91", "93", "94",  # PA
        "92", "97",  # AM
        "95",  # RR
        "96",  # AP
        "98", "99",  # MA
    ]
)  # fmt: skip
"""The 67 Brazilian area codes (DDD / Código Nacional) of the ANATEL numbering plan."""

_CPF_LENGTH = 11
_CPF_SHAPE = re.compile(r"[0-9]{3}\.?[0-9]{3}\.?[0-9]{3}-?[0-9]{2}")
_CPF_SEPARATORS = re.compile(r"[.\-\s]")

_PHONE_ALLOWED = re.compile(r"\+?[0-9 ().\-]+")
_PHONE_SEPARATORS = re.compile(r"[ ().\-]")
_E164_FOREIGN = re.compile(r"\+[1-9][0-9]{6,14}")
_LANDLINE_FIRST = frozenset("2345")
_MOBILE_FIRST = frozenset("6789")

_EMAIL_MAX_LENGTH = 254
_EMAIL_LOCAL_MAX_LENGTH = 64
_EMAIL_LABEL_MAX_LENGTH = 63
_EMAIL_ATEXT = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-]+")
_EMAIL_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?")


class InvalidField(ValueError):
    """A contact field failed validation; the message never contains the submitted value."""

    def __init__(self, field: str, reason: str) -> None:
        """Build the error from the field name and a value-free reason."""
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

    def __reduce__(self) -> tuple[type[InvalidField], tuple[str, str]]:
        """Pickle by field and reason (the default would pass only the message)."""
        return (type(self), (self.field, self.reason))


# --------------------------------------------------------------------------- CPF


def cpf_check_digits(base: str) -> str:
    """Return the two mod-11 check digits of a 9-digit CPF base."""
    if len(base) != _CPF_LENGTH - 2 or not _is_ascii_digits(base):
        raise ValueError("a CPF base has exactly 9 digits")
    numbers = [int(c) for c in base]
    first = _cpf_digit(numbers)
    second = _cpf_digit([*numbers, first])
    return f"{first}{second}"


def _cpf_digit(numbers: list[int]) -> int:
    """Compute one CPF check digit: weights n+1..2, remainder of x10 by 11, 10 becomes 0."""
    weight = len(numbers) + 1
    total = sum(n * (weight - i) for i, n in enumerate(numbers))
    return (total * 10) % 11 % 10


def is_valid_cpf(digits: str) -> bool:
    """Tell whether 11 ASCII digits form a valid CPF (check digits match, not all equal)."""
    if len(digits) != _CPF_LENGTH or not _is_ascii_digits(digits):
        return False
    if len(set(digits)) == 1:
        return False
    return cpf_check_digits(digits[:9]) == digits[9:]


def normalize_cpf(raw: str, *, field: str = "cpf") -> str:
    """Return the 11 digits of a CPF given bare or as ``123.456.789-09``, or raise."""
    value = raw.strip()
    if not value:
        raise InvalidField(field, "is empty")
    if not _CPF_SHAPE.fullmatch(value):
        digits = _CPF_SEPARATORS.sub("", value)
        if not _is_ascii_digits(digits):
            raise InvalidField(field, "contains invalid characters")
        if len(digits) != _CPF_LENGTH:
            raise InvalidField(field, "must have 11 digits")
        raise InvalidField(field, "must be 11 digits, optionally formatted as 000.000.000-00")
    digits = value.replace(".", "").replace("-", "")
    if len(set(digits)) == 1:
        raise InvalidField(field, "all digits are the same")
    if cpf_check_digits(digits[:9]) != digits[9:]:
        raise InvalidField(field, "check digits do not match")
    return digits


# ------------------------------------------------------------------------- phones


def normalize_phone(raw: str, *, default_ddd: str | None = None, field: str = "phone") -> str:
    """Return a phone number in E.164 form (``+55DDNNNNNNNNN`` for Brazil), or raise."""
    value = raw.strip()
    if not value:
        raise InvalidField(field, "is empty")
    compact = value.lower()
    if compact.startswith("0xx"):
        compact = "0" + compact[3:]
    if not _PHONE_ALLOWED.fullmatch(compact):
        raise InvalidField(field, "contains invalid characters")
    compact = _PHONE_SEPARATORS.sub("", compact)

    if compact.startswith("+"):
        if compact.startswith("+" + BRAZIL_COUNTRY_CODE):
            national = compact[3:]
            if len(national) not in (10, 11):
                raise InvalidField(field, "a Brazilian number must have a DDD and 8 or 9 digits")
            return _brazilian(national[:2], national[2:], field)
        if not _E164_FOREIGN.fullmatch(compact):
            raise InvalidField(field, "is not a valid international (E.164) number")
        return compact

    digits = compact
    if digits.startswith("0"):
        # 0 + DDD + subscriber (11-12 digits) or 0 + carrier + DDD + subscriber (13-14).
        if len(digits) in (11, 12):
            return _brazilian(digits[1:3], digits[3:], field)
        if len(digits) in (13, 14):
            return _brazilian(digits[3:5], digits[5:], field)
        raise InvalidField(field, "has a trunk prefix but the wrong number of digits")
    if digits.startswith(BRAZIL_COUNTRY_CODE) and len(digits) in (12, 13):
        return _brazilian(digits[2:4], digits[4:], field)
    if len(digits) in (10, 11):
        return _brazilian(digits[:2], digits[2:], field)
    if len(digits) in (8, 9):
        if default_ddd is None:
            raise InvalidField(field, "is missing the area code (DDD)")
        if default_ddd not in VALID_DDDS:
            raise InvalidField("default_ddd", "is not a valid Brazilian area code (DDD)")
        return _brazilian(default_ddd, digits, field)
    if len(digits) < 8:
        raise InvalidField(field, "is too short")
    raise InvalidField(field, "is too long (foreign numbers need a leading +)")


def _brazilian(ddd: str, subscriber: str, field: str) -> str:
    """Validate a DDD and subscriber number and apply the ninth-digit rule."""
    if ddd not in VALID_DDDS:
        raise InvalidField(field, "is not a valid Brazilian area code (DDD)")
    first = subscriber[:1]
    if len(subscriber) == 9:
        if first != "9":
            raise InvalidField(field, "a 9-digit number must be a mobile number starting with 9")
        return f"+{BRAZIL_COUNTRY_CODE}{ddd}{subscriber}"
    if len(subscriber) != 8:
        raise InvalidField(field, "the subscriber number must have 8 or 9 digits")
    if first in _LANDLINE_FIRST:
        return f"+{BRAZIL_COUNTRY_CODE}{ddd}{subscriber}"
    if first in _MOBILE_FIRST:
        return f"+{BRAZIL_COUNTRY_CODE}{ddd}9{subscriber}"
    raise InvalidField(field, "the subscriber number cannot start with 0 or 1")


def is_mobile(e164: str) -> bool:
    """Tell whether a normalized E.164 number is a Brazilian mobile number (foreign: False)."""
    prefix = "+" + BRAZIL_COUNTRY_CODE
    if not e164.startswith(prefix):
        return False
    national = e164[len(prefix) :]
    return (
        len(national) == 11
        and _is_ascii_digits(national)
        and national[:2] in VALID_DDDS
        and national[2] == "9"
    )


# ------------------------------------------------------------------------- e-mail


def normalize_email(raw: str, *, field: str = "email") -> str:
    """Return a syntactically valid e-mail address with a lower-cased domain, or raise."""
    value = raw.strip()
    if not value:
        raise InvalidField(field, "is empty")
    if any(c.isspace() for c in value):
        raise InvalidField(field, "contains whitespace")
    if not value.isascii():
        raise InvalidField(field, "must contain only ASCII characters")
    if len(value) > _EMAIL_MAX_LENGTH:
        raise InvalidField(field, f"is longer than {_EMAIL_MAX_LENGTH} characters")
    if "@" not in value:
        raise InvalidField(field, "is missing the @")
    if value.count("@") > 1:
        raise InvalidField(field, "has more than one @")
    local, domain = value.split("@")
    if ".." in value:
        raise InvalidField(field, "has consecutive dots")
    _check_local_part(local, field)
    _check_domain(domain, field)
    return f"{local}@{domain.lower()}"


def _check_local_part(local: str, field: str) -> None:
    """Validate the dot-atom part before the @."""
    if not local:
        raise InvalidField(field, "the part before the @ is empty")
    if len(local) > _EMAIL_LOCAL_MAX_LENGTH:
        raise InvalidField(field, "the part before the @ is longer than 64 characters")
    if local.startswith(".") or local.endswith("."):
        raise InvalidField(field, "the part before the @ cannot start or end with a dot")
    if not all(_EMAIL_ATEXT.fullmatch(atom) for atom in local.split(".")):
        raise InvalidField(field, "the part before the @ contains invalid characters")


def _check_domain(domain: str, field: str) -> None:
    """Validate the host name after the @."""
    if not domain:
        raise InvalidField(field, "the domain is empty")
    if domain.startswith(".") or domain.endswith("."):
        raise InvalidField(field, "the domain cannot start or end with a dot")
    labels = domain.split(".")
    if len(labels) < 2:
        raise InvalidField(field, "the domain must have at least two labels")
    for label in labels:
        if len(label) > _EMAIL_LABEL_MAX_LENGTH or not _EMAIL_LABEL.fullmatch(label):
            raise InvalidField(field, "the domain contains an invalid label")
    if labels[-1].isdigit():
        raise InvalidField(field, "the top-level domain cannot be numeric")


def _is_ascii_digits(text: str) -> bool:
    """Tell whether text is non-empty and made only of the ASCII digits 0-9."""
    return text.isascii() and text.isdigit()
