"""The X Ads API: OAuth 1.0a signing, the async client and its errors."""
