"""A plug-in module whose import fails with something other than ImportError."""

raise RuntimeError("VENDOR_TOKEN is not set")


def values(context):  # never reached
    return None
