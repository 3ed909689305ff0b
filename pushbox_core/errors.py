"""What can go wrong, in domain terms. No HTTP here: push_api maps these to statuses."""


class PushboxError(Exception):
    """Base of every error Pushbox raises on purpose. Its text is safe to show a client."""


class Unauthorized(PushboxError):
    """Missing or wrong credentials."""


class Forbidden(PushboxError):
    """Valid credentials used outside their scope."""


class NotFound(PushboxError):
    """The thing asked for does not exist (or is not the caller's to see)."""


class DeviceNotFound(NotFound):
    pass


class NotificationNotFound(NotFound):
    pass


class CampaignNotFound(NotFound):
    pass


class InvalidRequest(PushboxError):
    """A request that parsed but makes no sense (422)."""

    def __init__(self, message: str, field: str | None = None, location: str = "json"):
        super().__init__(message)
        self.field = field
        self.location = location  # where the field is: json (the body), query, headers


class PayloadTooLarge(PushboxError):
    pass


class RateLimited(PushboxError):
    def __init__(self, message: str, retry_after_s: int):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class DependencyDown(PushboxError):
    """MySQL, RabbitMQ or Redis cannot be reached; nothing was half-written."""

    def __init__(self, dependency: str, detail: str = ""):
        super().__init__(f"{dependency} is unavailable, try again shortly")
        self.dependency = dependency
        self.detail = detail


class BrokerUnavailable(DependencyDown):
    def __init__(self, detail: str = ""):
        super().__init__("message broker", detail)


class DeliveryUnknown(BrokerUnavailable):
    """The broker was handed the message and never confirmed or refused it: it may be
    delivered yet. A retry must reuse its id (receivers dedupe by id): `message_id`,
    when the raiser knows which message it was."""

    def __init__(self, detail: str = "", *, message_id: str | None = None):
        super().__init__(detail)
        self.message_id = message_id


class DatabaseUnavailable(DependencyDown):
    def __init__(self, detail: str = ""):
        super().__init__("database", detail)


class CacheUnavailable(DependencyDown):
    def __init__(self, detail: str = ""):
        super().__init__("session store", detail)


class NotDelivered(PushboxError):
    """A mandatory publish reached no queue, or the broker refused it."""


class Conflict(PushboxError):
    """The request collides with another one in progress."""
