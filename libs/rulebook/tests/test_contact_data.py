"""CPF, phone and e-mail normalization of beneficiary contact data."""

from __future__ import annotations

import pickle
from collections.abc import Callable

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from rn623_rulebook.contact_data import (
    VALID_DDDS,
    InvalidField,
    cpf_check_digits,
    is_mobile,
    is_valid_cpf,
    normalize_cpf,
    normalize_email,
    normalize_phone,
)

pytestmark = pytest.mark.unit


def reference_cpf(base: str) -> str:
    """Complete a 9-digit base with its check digits (independent reference algorithm)."""
    digits = [int(c) for c in base]
    for _ in range(2):
        weights = range(len(digits) + 1, 1, -1)
        remainder = sum(d * w for d, w in zip(digits, weights, strict=True)) % 11
        digits.append(0 if remainder < 2 else 11 - remainder)
    return "".join(map(str, digits))


VALID_CPFS = [
    "52998224725",
    "11144477735",
    "12345678909",
    "39053344705",
    "98765432100",
    "45317828791",
    "93541134780",
    "01234567890",  # leading zero
    "00000000191",
    "10000000019",
]


# ----------------------------------------------------------------------------- CPF


@pytest.mark.parametrize("cpf", VALID_CPFS)
def test_reference_values_agree_with_the_reference_algorithm(cpf: str) -> None:
    assert reference_cpf(cpf[:9]) == cpf
    assert cpf_check_digits(cpf[:9]) == cpf[9:]


@pytest.mark.parametrize("cpf", VALID_CPFS)
def test_valid_cpf_bare_and_masked(cpf: str) -> None:
    masked = f"{cpf[:3]}.{cpf[3:6]}.{cpf[6:9]}-{cpf[9:]}"
    assert is_valid_cpf(cpf)
    assert normalize_cpf(cpf) == cpf
    assert normalize_cpf(masked) == cpf
    assert normalize_cpf(f"  {masked}\n") == cpf


@pytest.mark.parametrize("raw", ["529982247-25", "529.982.24725", "529982.247-25"])
def test_cpf_partial_masks_are_accepted(raw: str) -> None:
    assert normalize_cpf(raw) == "52998224725"


@pytest.mark.parametrize(
    "raw",
    [
        "529.982.247-24",  # second check digit wrong
        "529.982.247-15",  # first check digit wrong
        "52998224752",  # check digits swapped
        "12345678900",
        "42998224725",  # a base digit changed
    ],
)
def test_cpf_with_wrong_check_digits_is_refused(raw: str) -> None:
    with pytest.raises(InvalidField) as info:
        normalize_cpf(raw)
    assert info.value.field == "cpf"
    assert info.value.reason == "check digits do not match"
    assert str(info.value) == "cpf: check digits do not match"
    assert not is_valid_cpf(raw.replace(".", "").replace("-", ""))


@pytest.mark.parametrize("digit", "0123456789")
def test_cpf_with_repeated_digits_is_refused(digit: str) -> None:
    cpf = digit * 11
    assert not is_valid_cpf(cpf)
    with pytest.raises(InvalidField, match="all digits are the same"):
        normalize_cpf(cpf)
    with pytest.raises(InvalidField, match="all digits are the same"):
        normalize_cpf(f"{digit * 3}.{digit * 3}.{digit * 3}-{digit * 2}")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        ("5299822472", "must have 11 digits"),  # leading zero lost / digit missing
        ("529982247250", "must have 11 digits"),
        ("529.982.247-2", "must have 11 digits"),
        ("529.982.247/25", "contains invalid characters"),
        ("CPF 52998224725", "contains invalid characters"),
        ("".join(chr(ord(c) + 0xFEE0) for c in "52998224725"), "contains invalid characters"),
        ("529 982 247 25", "must be 11 digits, optionally formatted as 000.000.000-00"),
        ("52.998.224-725", "must be 11 digits, optionally formatted as 000.000.000-00"),
    ],
)
def test_malformed_cpf_is_refused(raw: str, reason: str) -> None:
    with pytest.raises(InvalidField) as info:
        normalize_cpf(raw)
    assert info.value.reason == reason


@pytest.mark.parametrize(
    "digits", ["", "5299822472", "529982247250", "5299822472a", "529.982.247-25"]
)
def test_is_valid_cpf_needs_exactly_eleven_digits(digits: str) -> None:
    assert not is_valid_cpf(digits)


@pytest.mark.parametrize("base", ["", "12345678", "1234567890", "12345678a"])
def test_cpf_check_digits_needs_a_nine_digit_base(base: str) -> None:
    with pytest.raises(ValueError, match="9 digits"):
        cpf_check_digits(base)


@given(st.text(alphabet="0123456789", min_size=9, max_size=9))
def test_any_base_with_computed_check_digits_is_valid(base: str) -> None:
    cpf = reference_cpf(base)
    assert cpf_check_digits(base) == cpf[9:]
    if len(set(cpf)) == 1:  # 000.000.000-00, 111.111.111-11...: valid arithmetic, refused
        assert not is_valid_cpf(cpf)
        return
    assert is_valid_cpf(cpf)
    assert normalize_cpf(f"{cpf[:3]}.{cpf[3:6]}.{cpf[6:9]}-{cpf[9:]}") == cpf


def mutate(cpf: str, position: int, delta: int) -> str:
    """Replace one digit of cpf by a different digit."""
    changed = str((int(cpf[position]) + delta) % 10)
    return cpf[:position] + changed + cpf[position + 1 :]


@given(
    st.text(alphabet="0123456789", min_size=9, max_size=9),
    st.integers(min_value=0, max_value=10),
    st.integers(min_value=1, max_value=9),
)
def test_changing_a_single_digit_invalidates_the_cpf(base: str, position: int, delta: int) -> None:
    # Exact property: a CPF check digit is (10 * sum mod 11) mod 10, so remainders 10 and 0
    # both give 0. When the first check digit is 0, changing a base digit can flip its
    # remainder between 0 and 10 and go undetected (see the collision test below); when it
    # is not 0, every single-digit change is caught. Changing a check digit always is.
    cpf = reference_cpf(base)
    assume(position >= 9 or cpf[9] != "0")
    mutated = mutate(cpf, position, delta)
    assert not is_valid_cpf(mutated)
    with pytest.raises(InvalidField):
        normalize_cpf(mutated)


@pytest.mark.parametrize(
    ("cpf", "neighbour"),
    [
        ("70499962206", "80499962206"),  # first digit changed, remainder 10 -> 0
        ("82883607508", "72883607508"),
    ],
)
def test_single_digit_collisions_exist_when_first_check_digit_is_zero(
    cpf: str, neighbour: str
) -> None:
    assert cpf[9] == "0"
    assert sum(a != b for a, b in zip(cpf, neighbour, strict=True)) == 1
    assert is_valid_cpf(cpf)
    assert is_valid_cpf(neighbour)


# --------------------------------------------------------------------------- phones


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("(11) 91234-5678", "+5511912345678"),
        ("11912345678", "+5511912345678"),
        ("11 9 1234 5678", "+5511912345678"),
        ("+55 11 91234-5678", "+5511912345678"),
        ("+55 (11) 91234-5678", "+5511912345678"),
        ("+5511912345678", "+5511912345678"),
        ("5511912345678", "+5511912345678"),
        ("55 11 91234-5678", "+5511912345678"),
        ("011 91234-5678", "+5511912345678"),
        ("0xx11 91234-5678", "+5511912345678"),
        ("0XX11 91234-5678", "+5511912345678"),
        ("0 21 11 91234-5678", "+5511912345678"),  # carrier code 21
        ("  (21) 99876.5432  ", "+5521998765432"),
        ("(99) 98123-4567", "+5599981234567"),
        # mobile numbers written with 8 digits get the ninth digit
        ("(11) 8123-4567", "+5511981234567"),
        ("(21) 7123-4567", "+5521971234567"),
        ("(31) 6123-4567", "+5531961234567"),
        ("(85) 9912-3456", "+5585999123456"),
        ("1181234567", "+5511981234567"),
        ("+55 11 8123-4567", "+5511981234567"),
        ("551181234567", "+5511981234567"),
        ("0xx11 8123-4567", "+5511981234567"),
        ("0 41 11 8123-4567", "+5511981234567"),
        # landlines keep 8 digits
        ("(11) 3123-4567", "+551131234567"),
        ("(21) 2123-4567", "+552121234567"),
        ("(51) 4003-1234", "+555140031234"),
        ("(55) 3221-1234", "+555532211234"),  # DDD 55 (Santa Maria, RS)
        ("553221-1234", "+555532211234"),  # national number of DDD 55, not a country code
        ("+55 55 3221-1234", "+555532211234"),
        ("011 3123-4567", "+551131234567"),
        ("0 15 11 3123-4567", "+551131234567"),
        # foreign numbers in E.164 form are kept
        ("+1 (212) 555-0100", "+12125550100"),
        ("+351 21 123 4567", "+351211234567"),
        ("+44 20 7946 0958", "+442079460958"),
        ("+683 4002", "+6834002"),  # Niue: 7 digits in all
    ],
)
def test_phone_is_normalized_to_e164(raw: str, expected: str) -> None:
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize(
    ("raw", "default_ddd", "expected"),
    [
        ("91234-5678", "21", "+5521912345678"),
        ("8123-4567", "11", "+5511981234567"),
        ("3123-4567", "11", "+551131234567"),
        ("(11) 91234-5678", "21", "+5511912345678"),  # an explicit DDD wins
    ],
)
def test_default_ddd_completes_a_local_number(raw: str, default_ddd: str, expected: str) -> None:
    assert normalize_phone(raw, default_ddd=default_ddd) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "is empty"),
        ("(20) 91234-5678", "is not a valid Brazilian area code (DDD)"),
        ("(10) 91234-5678", "is not a valid Brazilian area code (DDD)"),
        ("(23) 3123-4567", "is not a valid Brazilian area code (DDD)"),
        ("(36) 91234-5678", "is not a valid Brazilian area code (DDD)"),
        ("(52) 91234-5678", "is not a valid Brazilian area code (DDD)"),
        ("(72) 91234-5678", "is not a valid Brazilian area code (DDD)"),
        ("(90) 91234-5678", "is not a valid Brazilian area code (DDD)"),
        ("+55 20 91234-5678", "is not a valid Brazilian area code (DDD)"),
        ("1234", "is too short"),
        ("1234567", "is too short"),
        ("91234-5678", "is missing the area code (DDD)"),
        ("(11) 81234-5678", "a 9-digit number must be a mobile number starting with 9"),
        ("(11) 31234-5678", "a 9-digit number must be a mobile number starting with 9"),
        ("(11) 1234-5678", "the subscriber number cannot start with 0 or 1"),
        ("(11) 0123-4567", "the subscriber number cannot start with 0 or 1"),
        ("+55 11 1234-567", "a Brazilian number must have a DDD and 8 or 9 digits"),
        ("+55 11 91234-56789", "a Brazilian number must have a DDD and 8 or 9 digits"),
        ("0 11 123", "has a trunk prefix but the wrong number of digits"),
        ("12125550100123", "is too long (foreign numbers need a leading +)"),
        ("+0 123 4567", "is not a valid international (E.164) number"),
        ("+1 234", "is not a valid international (E.164) number"),
        ("+1234567890123456", "is not a valid international (E.164) number"),  # 16 digits
        ("(11) 91234-5678 ramal 12", "contains invalid characters"),
        ("11+912345678", "contains invalid characters"),
        ("tel: 11912345678", "contains invalid characters"),
        ("(11) ٩١٢٣٤-٥٦٧٨", "contains invalid characters"),  # Arabic-Indic digits
    ],
)
def test_invalid_phone_is_refused(raw: str, reason: str) -> None:
    with pytest.raises(InvalidField) as info:
        normalize_phone(raw)
    assert info.value.field == "phone"
    assert info.value.reason == reason


def test_invalid_default_ddd_is_reported_as_such() -> None:
    with pytest.raises(InvalidField) as info:
        normalize_phone("91234-5678", default_ddd="20")
    assert info.value.field == "default_ddd"


def test_ddd_list_is_anatels_67_codes() -> None:
    assert len(VALID_DDDS) == 67
    invalid = {"10", "20", "23", "25", "26", "29", "30", "36", "39", "40", "50", "52"}
    invalid |= {"56", "57", "58", "59", "60", "70", "72", "76", "78", "80", "90"}
    assert not VALID_DDDS & invalid
    assert {str(n) for n in range(10, 100)} - invalid == VALID_DDDS


@pytest.mark.parametrize(
    ("e164", "expected"),
    [
        ("+5511912345678", True),
        ("+5599981234567", True),
        ("+551131234567", False),
        ("+555532211234", False),
        ("+12125550100", False),
        ("+5520912345678", False),
        ("5511912345678", False),
        ("+551191234567", False),
        ("", False),
    ],
)
def test_is_mobile(e164: str, expected: bool) -> None:
    assert is_mobile(e164) is expected


@given(st.sampled_from(sorted(VALID_DDDS)), st.text(alphabet="0123456789", min_size=7, max_size=7))
def test_every_eight_digit_mobile_gains_the_ninth_digit(ddd: str, rest: str) -> None:
    for first in "6789":
        e164 = normalize_phone(f"({ddd}) {first}{rest}")
        assert e164 == f"+55{ddd}9{first}{rest}"
        assert is_mobile(e164)
        assert normalize_phone(e164) == e164  # idempotent


# --------------------------------------------------------------------------- e-mail


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("maria.silva@example.com", "maria.silva@example.com"),
        ("Maria.Silva@Example.COM.BR", "Maria.Silva@example.com.br"),
        ("  joao@exemplo.com.br \n", "joao@exemplo.com.br"),
        ("joao+ans@exemplo.com.br", "joao+ans@exemplo.com.br"),
        ("o'neil@example.org", "o'neil@example.org"),
        ("a_b-c@sub.mail-server.example.com", "a_b-c@sub.mail-server.example.com"),
        ("x@y.co", "x@y.co"),
        ("user@xn--mller-kva.de", "user@xn--mller-kva.de"),
        ("12345@123.example", "12345@123.example"),
        (f"{'a' * 64}@example.com", f"{'a' * 64}@example.com"),
    ],
)
def test_valid_email_is_normalized(raw: str, expected: str) -> None:
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "is empty"),
        ("maria silva@example.com", "contains whitespace"),
        ("maria@exam ple.com", "contains whitespace"),
        ("maria\t@example.com", "contains whitespace"),
        ("maria.example.com", "is missing the @"),
        ("maria@@example.com", "has more than one @"),
        ("ma@ria@example.com", "has more than one @"),
        ("maria..silva@example.com", "has consecutive dots"),
        ("maria@example..com", "has consecutive dots"),
        ("@example.com", "the part before the @ is empty"),
        ("maria@", "the domain is empty"),
        (".maria@example.com", "the part before the @ cannot start or end with a dot"),
        ("maria.@example.com", "the part before the @ cannot start or end with a dot"),
        ("ma(ria)@example.com", "the part before the @ contains invalid characters"),
        ('"maria"@example.com', "the part before the @ contains invalid characters"),
        (f"{'a' * 65}@example.com", "the part before the @ is longer than 64 characters"),
        ("maria@localhost", "the domain must have at least two labels"),
        ("maria@.example.com", "the domain cannot start or end with a dot"),
        ("maria@example.com.", "the domain cannot start or end with a dot"),
        ("maria@-example.com", "the domain contains an invalid label"),
        ("maria@example-.com", "the domain contains an invalid label"),
        ("maria@exa_mple.com", "the domain contains an invalid label"),
        ("maria@[192.168.0.1]", "the domain contains an invalid label"),
        (f"maria@{'a' * 64}.com", "the domain contains an invalid label"),
        ("maria@192.168.0.1", "the top-level domain cannot be numeric"),
        ("joão@exemplo.com.br", "must contain only ASCII characters"),
        ("maria@açúcar.com.br", "must contain only ASCII characters"),
        ("maria\u00a0silva@exemplo.com.br", "contains whitespace"),
        (f"{'a' * 64}@{'b' * 63}.{'c' * 63}.{'d' * 63}.com", "is longer than 254 characters"),
    ],
)
def test_invalid_email_is_refused(raw: str, reason: str) -> None:
    with pytest.raises(InvalidField) as info:
        normalize_email(raw)
    assert info.value.field == "email"
    assert info.value.reason == reason


def test_email_of_exactly_254_characters_is_accepted() -> None:
    domain = ".".join(["a" * 63, "b" * 63, "c" * 61, "com"])  # 193 characters
    address = f"{'x' * 60}@{domain}"
    assert len(address) == 254
    assert normalize_email(address) == address


# ------------------------------------------------------------------- InvalidField


@pytest.mark.parametrize(
    ("call", "raw"),
    [
        (normalize_cpf, "529.982.247-24"),
        (normalize_cpf, "5299822472"),
        (normalize_phone, "(20) 91234-5678"),
        (normalize_phone, "+55 11 1234-567"),
        (normalize_email, "maria..silva@example.com"),
        (normalize_email, "maria silva@example.com"),
    ],
)
def test_messages_never_contain_the_submitted_value(call: Callable[[str], str], raw: str) -> None:
    with pytest.raises(InvalidField) as info:
        call(raw)
    message = str(info.value)
    digits = "".join(c for c in raw if c.isdigit())
    assert raw not in message
    assert "maria" not in message
    assert not digits or digits[:4] not in message
    assert message == f"{info.value.field}: {info.value.reason}"
    assert raw not in repr(info.value)


def test_field_name_can_be_overridden() -> None:
    with pytest.raises(InvalidField) as info:
        normalize_phone("(20) 91234-5678", field="beneficiary.whatsapp")
    assert str(info.value).startswith("beneficiary.whatsapp: ")
    with pytest.raises(InvalidField, match=r"^beneficiary\.cpf: "):
        normalize_cpf("111.111.111-11", field="beneficiary.cpf")
    with pytest.raises(InvalidField, match=r"^beneficiary\.email: "):
        normalize_email("nope", field="beneficiary.email")


def test_invalid_field_is_a_value_error_and_pickles() -> None:
    error = InvalidField("cpf", "check digits do not match")
    assert isinstance(error, ValueError)
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - round-trip of our own object
    assert (copy.field, copy.reason, str(copy)) == (error.field, error.reason, str(error))
