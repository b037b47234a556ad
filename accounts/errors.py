"""Domain errors raised by services. Pages turn them into form errors, the API into JSON 4xx."""


class DomainError(Exception):
    """A request the rules refuse. `code` is stable for clients; `field` names the input at fault."""

    status_code = 400
    code = "invalid"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code


class NotAllowed(DomainError):
    """The actor's role does not allow this action."""

    status_code = 403
    code = "permission_denied"


class Conflict(DomainError):
    """The current state does not allow this change."""

    status_code = 409
    code = "conflict"


class PaymentDeclined(DomainError):
    """The card on file was refused (or there is none): nothing changed; a new card is needed."""

    status_code = 402
    code = "card_declined"
