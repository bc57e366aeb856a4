"""CORS for what browser-based MCP clients call: discovery, registration and the token endpoints.

These endpoints take no cookies, so any origin may call them (the MCP endpoint has its own
CORS handling in the gateway).
"""

from django.http import HttpResponse

CORS_PATHS = ("/.well-known/", "/register", "/token", "/revoke")
ALLOW_HEADERS = "Authorization, Content-Type, Mcp-Protocol-Version, Mcp-Session-Id"
EXPOSE_HEADERS = "WWW-Authenticate, Mcp-Session-Id"


def add_cors_headers(response, methods: str = "GET, POST, OPTIONS") -> None:
    response["Access-Control-Allow-Origin"] = "*"
    response["Access-Control-Allow-Methods"] = methods
    response["Access-Control-Allow-Headers"] = ALLOW_HEADERS
    response["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
    response["Access-Control-Max-Age"] = "86400"


class OAuthEndpointCorsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path.startswith(CORS_PATHS):
            return self.get_response(request)
        if request.method == "OPTIONS" and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in request.META:
            response = HttpResponse(status=204)
        else:
            response = self.get_response(request)
        add_cors_headers(response)
        return response


class NoFramingMiddleware:
    """Sign-in and consent pages must never render inside another site's frame (clickjacking);
    X-Frame-Options comes from Django, this adds the CSP form modern browsers prefer."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.setdefault("Content-Security-Policy", "frame-ancestors 'none'")
        return response
