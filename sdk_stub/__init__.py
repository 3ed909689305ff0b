"""A Python client that behaves like the app on a phone (see client.Phone)."""

from sdk_stub.client import Phone, SdkError

__all__ = ["Phone", "SdkError"]
