"""The test provider's URLs: DOT under /o (the issuer), sign-in, and the test's controls."""

import json

from django.contrib.auth import get_user_model
from django.contrib.auth import views as auth_views
from django.http import HttpResponseBadRequest, JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt
from oauth2_provider.models import Application

from tests.support.idp.validator import PEOPLE


@csrf_exempt
def person(request):
    """Create or change a person: username, password, email, email_verified, groups,
    misbehave (expired, wrong_audience, wrong_issuer, wrong_nonce, forged or "")."""
    if request.method != "POST":
        return HttpResponseBadRequest("POST JSON")
    body = json.loads(request.body)
    user, _ = get_user_model().objects.get_or_create(username=body["username"])
    user.set_password(body["password"])
    user.save()
    PEOPLE[user.username] = {
        key: body[key] for key in ("email", "email_verified", "groups", "misbehave") if key in body
    }
    return JsonResponse({"sub": str(user.pk)})


@csrf_exempt
def client(request):
    """Register the platform as a confidential RS256 client that is never asked for consent."""
    body = json.loads(request.body)
    Application.objects.filter(client_id=body["client_id"]).delete()
    Application.objects.create(
        client_id=body["client_id"],
        client_secret=body["client_secret"],
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=" ".join(body["redirect_uris"]),
        algorithm=Application.RS256_ALGORITHM,
        skip_authorization=True,
        name="platform",
    )
    return JsonResponse({"ok": True})


urlpatterns = [
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("_test/people", person),
    path("_test/clients", client),
]
