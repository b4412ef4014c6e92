"""Content-Security-Policy on every response that does not set one (Django 5.2 has no CSP of
its own). Pages with needs of their own set the header themselves and keep it (the web copy
of a digest); the admin, which runs its own static scripts, gets CONTENT_SECURITY_POLICY_ADMIN."""

from django.conf import settings


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            match = getattr(request, "resolver_match", None)
            in_admin = match is not None and "admin" in match.app_names
            response["Content-Security-Policy"] = (
                settings.CONTENT_SECURITY_POLICY_ADMIN if in_admin else settings.CONTENT_SECURITY_POLICY
            )
        return response
