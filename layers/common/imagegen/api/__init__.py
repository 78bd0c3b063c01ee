"""The HTTP API: routes, error mapping and the OpenAPI document."""
