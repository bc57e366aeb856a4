"""Errors in DRF's shape: a service's TenantError is a 400 with its message as ``detail``."""

from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from tenants.services import TenantError


def exception_handler(exc, context):
    if isinstance(exc, TenantError):
        return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
    return drf_exception_handler(exc, context)
