"""Local fakes of external services (Numerai's API) that the real clients talk to in tests."""
