"""The conclusive-answer rule: stalling texts, legal basis of denials, length, outcomes."""

from __future__ import annotations

import pytest

from protocol_svc.answers import (
    FILLER_PHRASES,
    MIN_MEANINGFUL_WORDS,
    OUTCOMES,
    STALLING_PHRASES,
    AnswerProblem,
    Outcome,
    check_answer,
    is_generic,
    meaningful_word_count,
    reanalysis_allowed,
)

pytestmark = pytest.mark.unit


def fullwidth(text: str) -> str:
    """Spell ASCII text with full-width Unicode forms."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


LEGAL_BASIS = "Cláusula 12.3 do contrato; Lei 9.656/1998, art. 10"

STALLING_TEXTS = [
    "Em análise",
    "em analise",
    "EM ANÁLISE.",
    "Em processamento",
    "EM PROCESSAMENTO!!!",
    "Aguardando auditoria",
    "aguardando análise...",
    "Em avaliação",
    "Sob análise",
    "Encaminhado para análise",
    "Em andamento",
    "Aguarde retorno",
    "Estamos verificando",
    "Solicitação recebida",
    "SOLICITACAO RECEBIDA",
    "Sua solicitação está em análise.",
    "Informamos que sua solicitação está em processamento.",
    "Prezado beneficiário, informamos que sua solicitação está em análise.",
    "Prezado beneficiário, informamos que sua solicitação está em processamento. Favor aguardar.",
    "Prezada beneficiária, o pedido ainda está em avaliação. Favor aguardar.",
    "O pedido segue em análise no momento.",
    "No momento, o pedido encontra-se sob análise da auditoria médica.",
    "Sua solicitação foi encaminhada para análise técnica e retornaremos em breve.",
    "Informamos que o procedimento está aguardando auditoria. Aguarde retorno.",
    "Olá! Recebemos sua solicitação e estamos verificando. Obrigado pelo contato.",
    "Seu pedido está sendo analisado pela nossa equipe.",
    "Protocolo nº 12345620251121000001: em análise, retorno em até 5 dias úteis.",
    "Sr. beneficiário, o reembolso ainda está em processamento; aguarde retorno no prazo de "
    "10 dias úteis.",
    "em   ANÁLISE — aguardando   AUDITORIA",
    "Solicitação recebida. Entraremos em contato.",
    "A demanda permanece em andamento.",
    "Atenciosamente, sua solicitação está em tramitação junto ao setor responsável.",
    "Informamos que a guia está pendente de análise. Atenciosamente, Central de Atendimento.",
    "Bom dia! A solicitação de internação continua em análise pela auditoria.",
    fullwidth("Aguardando analise"),  # NFKD folds full-width letters
    "Em ana\u0301lise",  # decomposed accent
    "Seu pedido de reembolso será analisado e daremos retorno assim que possível.",
    "Em análise, ainda sem previsão de retorno.",
    "Estamos aguardando retorno do prestador.",
]

SUBSTANTIVE_TEXTS = [
    "Após análise, o procedimento foi autorizado para 12/12/2025 no Hospital X.",
    "Após análise da auditoria médica, a ressonância magnética foi autorizada; senha 4471.",
    "A análise foi concluída: o reembolso de R$ 350,00 será creditado em 15/01/2026.",
    "O processamento do reembolso foi concluído e o valor foi depositado na sua conta.",
    "Seu pedido, que estava em análise, foi autorizado hoje; a guia é a 998877.",
    "Informamos que a cirurgia foi autorizada e agendada para 03/02/2026 no Hospital São Lucas.",
    "A solicitação foi negada porque o procedimento não consta do Rol da ANS.",
    "Negamos a cobertura: o contrato está em período de carência até 10/03/2026.",
    "Procedimento foi autorizado.",
    "Consulta autorizada com a Dra. Ana Souza em 20/11/2025 às 14h.",
    "O exame de tomografia foi liberado e pode ser feito em qualquer laboratório da rede.",
    "Autorizamos 10 sessões de fisioterapia; as demais dependem de novo pedido médico.",
    "A segunda via do boleto foi enviada ao seu e-mail cadastrado.",
    "O reajuste de 2025 foi de 6,06 %, conforme percentual máximo autorizado pela ANS.",
    "O cancelamento do plano foi efetuado em 21/11/2025, sem multa.",
    "Em processamento anterior houve erro de cadastro, já corrigido; a carteirinha foi reemitida.",
    "Prezado beneficiário, seu reembolso foi aprovado e será pago em 5 dias úteis.",
    "Sua solicitação está em análise desde ontem e foi autorizada agora: senha 12345.",
    "A internação eletiva foi autorizada pela auditoria para o dia 02/12/2025.",
]


@pytest.mark.parametrize("text", STALLING_TEXTS)
def test_stalling_text_is_refused(text: str) -> None:
    assert is_generic(text)
    problems = check_answer("informed", text, None)
    assert "generic_answer" in {p.rule_id for p in problems}
    generic = next(p for p in problems if p.rule_id == "generic_answer")
    assert generic.field == "text"
    assert text not in generic.message


@pytest.mark.parametrize("text", STALLING_TEXTS)
@pytest.mark.parametrize("outcome", sorted(OUTCOMES))
def test_stalling_text_is_refused_for_every_outcome(outcome: str, text: str) -> None:
    problems = check_answer(outcome, text, LEGAL_BASIS)
    assert "generic_answer" in {p.rule_id for p in problems}


@pytest.mark.parametrize("text", SUBSTANTIVE_TEXTS)
def test_substantive_answer_is_accepted(text: str) -> None:
    assert not is_generic(text)
    assert check_answer("informed", text, None) == []


@pytest.mark.parametrize("text", SUBSTANTIVE_TEXTS)
def test_substantive_denial_with_legal_basis_is_accepted(text: str) -> None:
    assert check_answer("denied", text, LEGAL_BASIS) == []


def test_phrase_lists_are_already_normalized() -> None:
    for phrase in (*STALLING_PHRASES, *FILLER_PHRASES):
        assert phrase == phrase.strip().lower()
        assert phrase.replace(" ", "").replace("#", "").isascii()
        assert all(word.isalnum() or word == "#" for word in phrase.split())


@pytest.mark.parametrize("text", ["", "   ", "...", "Informamos que.", "Prezado beneficiário,"])
def test_text_without_substance_is_too_short_but_not_generic(text: str) -> None:
    rule_ids = [p.rule_id for p in check_answer("informed", text, None)]
    assert rule_ids == ["too_short"]


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("", 0),
        ("Autorizado.", 1),
        ("Pedido negado.", 2),
        ("Autorizado para 12/12/2025", 2),
        ("Procedimento foi autorizado.", 3),
        ("O pedido de exame da paciente foi negado.", 5),
        (" - ; ... !", 0),
        ("Sim, e com a guia.", 2),
    ],
)
def test_meaningful_word_count(text: str, count: int) -> None:
    assert meaningful_word_count(text) == count


@pytest.mark.parametrize("text", ["Autorizado.", "Pedido negado.", "OK", "Resolvido!", "Sim."])
def test_too_short_text_is_refused(text: str) -> None:
    problems = check_answer("authorized", text, None)
    assert [p.rule_id for p in problems] == ["too_short"]
    assert problems[0].field == "text"
    assert str(MIN_MEANINGFUL_WORDS) in problems[0].message


@pytest.mark.parametrize("legal_basis", [None, "", "   ", "-", "…", "n/a"])
def test_denial_needs_a_legal_basis(legal_basis: str | None) -> None:
    text = "A cobertura foi negada porque o procedimento é experimental."
    problems = check_answer("denied", text, legal_basis)
    if legal_basis == "n/a":  # has letters: the rule cannot judge its content
        assert problems == []
        return
    assert problems == [
        AnswerProblem(
            "missing_legal_basis",
            "legal_basis",
            "a denial must cite its contractual clause or legal norm",
        )
    ]


@pytest.mark.parametrize("outcome", ["authorized", "partially_authorized", "informed", "resolved"])
def test_legal_basis_is_optional_for_other_outcomes(outcome: str) -> None:
    text = "O procedimento foi autorizado para 12/12/2025 no Hospital X."
    assert check_answer(outcome, text, None) == []
    assert check_answer(outcome, text, LEGAL_BASIS) == []


@pytest.mark.parametrize("outcome", ["", "DENIED", "Denied", "approved", "rejected", "pending"])
def test_unknown_outcome_is_refused(outcome: str) -> None:
    text = "O procedimento foi autorizado para 12/12/2025 no Hospital X."
    problems = check_answer(outcome, text, None)
    assert [(p.rule_id, p.field) for p in problems] == [("unknown_outcome", "outcome")]
    assert "authorized, partially_authorized, denied, informed, resolved" in problems[0].message


def test_problems_accumulate() -> None:
    problems = check_answer("denied", "Em análise", None)
    assert [p.rule_id for p in problems] == ["missing_legal_basis", "generic_answer", "too_short"]


def test_outcomes_are_the_contract_values() -> None:
    assert {"authorized", "partially_authorized", "denied", "informed", "resolved"} == OUTCOMES
    assert check_answer(Outcome.DENIED, "A cobertura foi negada.", LEGAL_BASIS) == []


@pytest.mark.parametrize(
    ("outcome", "allowed"),
    [
        ("denied", True),
        ("partially_authorized", True),
        (Outcome.DENIED, True),
        ("authorized", False),
        ("informed", False),
        ("resolved", False),
        ("unknown", False),
        ("", False),
    ],
)
def test_reanalysis_allowed(outcome: str, allowed: bool) -> None:
    assert reanalysis_allowed(outcome) is allowed


def test_answer_problem_is_immutable() -> None:
    problem = AnswerProblem("too_short", "text", "message")
    with pytest.raises(AttributeError):
        problem.rule_id = "other"  # type: ignore[misc]
