"""HTTP routes of the users service: parse, call one logic function, shape the reply."""

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import RedirectResponse

from functions.users import errors, logic
from functions.users import service as svc
from functions.users.domain import MentorQuery, MentorSort
from functions.users.schemas import (
    MAX_RATE,
    AddRoleIn,
    Currency,
    ExportOut,
    ForgotPasswordIn,
    JwksOut,
    Language,
    LoginIn,
    MentorOut,
    MentorPage,
    MessageOut,
    ProfilePatchIn,
    RefreshIn,
    RegisterIn,
    RegisterOut,
    ResetPasswordIn,
    Skill,
    SwitchRoleIn,
    TokenIn,
    TokenOut,
    UserOut,
    UserPage,
)
from lwm_core import constants as c
from lwm_core.pagination import DEFAULT_LIMIT, MAX_LIMIT
from lwm_core.ratelimit import Limit
from lwm_core.web import (
    OPEN_QUERY,
    CurrentPrincipal,
    client_ip,
    create_app,
    principal_from_claims,
)

# --- rate limits (per client IP on public routes, per user on the rest) ------------

PER_IP = Limit("ip-route", 300, 60)
PER_USER = Limit("user-route", 600, 60)
REGISTER = Limit("register-ip", 20, 3600)
FORGOT = Limit("forgot-ip", 10, 3600)
LOGIN_FAILS_ACCOUNT = Limit("login-fail-account", 5, 900)
LOGIN_FAILS_CLIENT = Limit("login-fail-client", 20, 900)


def _limit(limit: Limit, per: str) -> Callable[[Request], None]:
    def dependency(request: Request) -> None:
        route = request.scope.get("route")
        path = getattr(route, "path", request.url.path)
        if per == "user":
            event = request.scope.get("aws.event") or {}
            claims = (
                ((event.get("requestContext") or {}).get("authorizer") or {}).get("jwt") or {}
            ).get("claims")
            key = principal_from_claims(claims).user_id if claims else client_ip(request)
        else:
            key = client_ip(request)
        svc.limiter().hit(limit, f"{request.method} {path}#{key}")

    return dependency


public_router = APIRouter(dependencies=[Depends(_limit(PER_IP, "ip"))])
user_router = APIRouter(dependencies=[Depends(_limit(PER_USER, "user"))])


def _deps() -> logic.Deps:
    return svc.deps()


DepsDep = Annotated[logic.Deps, Depends(_deps)]
Price = Annotated[int | None, Query(ge=0, le=MAX_RATE, description="Minor units per hour")]


def _tokens(pair: logic.TokenPair) -> TokenOut:
    return TokenOut(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
        active_role=pair.active_role,
    )


# --- identity provider metadata ------------------------------------------------------


@public_router.get("/.well-known/jwks.json", tags=["identity"])
def handle_get_jwks(response: Response) -> JwksOut:
    """Public keys that verify access tokens (every key of the rotation)."""
    response.headers["Cache-Control"] = "public, max-age=300"
    return JwksOut(keys=svc.signer().ring.jwks())


@public_router.get("/.well-known/openid-configuration", tags=["identity"])
def handle_get_openid_configuration(response: Response) -> dict[str, Any]:
    """OpenID discovery metadata (API Gateway's JWT authorizer reads it)."""
    s = svc.settings()
    response.headers["Cache-Control"] = "public, max-age=300"
    return {
        "issuer": s.issuer,
        "jwks_uri": f"{s.issuer.rstrip('/')}/.well-known/jwks.json",
        "token_endpoint": f"{s.base_url}/auth/login",
        "id_token_signing_alg_values_supported": ["ES256"],
        "subject_types_supported": ["public"],
        "response_types_supported": ["token"],
        "scopes_supported": list(c.ROLES),
        "claims_supported": ["sub", "roles", "active_role", "scope", "email_verified"],
    }


# --- registration, verification -------------------------------------------------------


@public_router.post(
    "/auth/register", status_code=201, tags=["auth"], dependencies=[Depends(_limit(REGISTER, "ip"))]
)
def handle_register(body: RegisterIn, deps: DepsDep) -> RegisterOut:
    """Create an account; a verification link is emailed."""
    user = logic.register(
        deps,
        email=str(body.email),
        password=body.password,
        display_name=body.display_name,
        timezone=body.timezone,
        roles=set(body.roles),
    )
    return RegisterOut(
        user=UserOut.from_domain(user),
        message="check your email to verify it; if no link arrives, sign in and ask for a new "
        "one with POST /auth/verify-email/resend",
    )


@public_router.get("/auth/verify-email", tags=["auth"])
def handle_verify_email_link(
    deps: DepsDep, token: Annotated[str, Query(min_length=1, max_length=200)]
) -> MessageOut:
    """The link in the verification email."""
    logic.verify_email(deps, token)
    return MessageOut(message="email verified")


@public_router.post("/auth/verify-email", tags=["auth"])
def handle_verify_email(body: TokenIn, deps: DepsDep) -> MessageOut:
    """Verify an email with the emailed token (for apps that capture the link)."""
    logic.verify_email(deps, body.token)
    return MessageOut(message="email verified")


@user_router.post("/auth/verify-email/resend", status_code=202, tags=["auth"])
def handle_resend_verification(principal: CurrentPrincipal, deps: DepsDep) -> MessageOut:
    """Email a new verification link."""
    user = logic.get_user(deps, principal.user_id)
    if not user.email_verified:
        logic.send_verification(deps, user)
    return MessageOut(message="if your email is unverified, a new link is on its way")


# --- sign-in --------------------------------------------------------------------------


@public_router.post("/auth/login", tags=["auth"])
def handle_login(body: LoginIn, request: Request, deps: DepsDep) -> TokenOut:
    """Sign in with email and password; repeated failures are slowed down (429)."""
    limiter = svc.limiter()
    account_key = logic.normalize_email(body.email)
    client_key = client_ip(request)
    limiter.check(LOGIN_FAILS_ACCOUNT, account_key)
    limiter.check(LOGIN_FAILS_CLIENT, client_key)
    try:
        user = logic.authenticate(deps, body.email, body.password)
    except errors.InvalidCredentialsError:
        limiter.hit(LOGIN_FAILS_CLIENT, client_key)
        limiter.hit(LOGIN_FAILS_ACCOUNT, account_key)
        raise
    limiter.reset(LOGIN_FAILS_ACCOUNT, account_key)
    return _tokens(logic.issue_tokens(deps, user))


@public_router.post("/auth/refresh", tags=["auth"])
def handle_refresh(body: RefreshIn, deps: DepsDep) -> TokenOut:
    """Rotate a refresh token; reusing an old one revokes the whole session."""
    return _tokens(logic.refresh(deps, body.refresh_token))


@public_router.post("/auth/logout", status_code=204, tags=["auth"])
def handle_logout(body: RefreshIn, deps: DepsDep) -> Response:
    """Revoke the session the refresh token belongs to."""
    logic.logout(deps, body.refresh_token)
    return Response(status_code=204)


@user_router.post("/auth/switch-role", tags=["auth"])
def handle_switch_role(body: SwitchRoleIn, principal: CurrentPrincipal, deps: DepsDep) -> TokenOut:
    """New tokens acting as another role the user holds."""
    return _tokens(logic.switch_role(deps, principal.user_id, body.role))


@public_router.post(
    "/auth/password/forgot",
    status_code=202,
    tags=["auth"],
    dependencies=[Depends(_limit(FORGOT, "ip"))],
)
def handle_forgot_password(body: ForgotPasswordIn, deps: DepsDep) -> MessageOut:
    """Email a reset token if the account exists (the answer is the same either way)."""
    logic.forgot_password(deps, body.email)
    return MessageOut(message="if an account exists for this email, a reset link is on its way")


@public_router.post("/auth/password/reset", tags=["auth"])
def handle_reset_password(body: ResetPasswordIn, deps: DepsDep) -> MessageOut:
    """Set a new password with the emailed token; every session is signed out."""
    logic.reset_password(deps, body.token, body.new_password)
    return MessageOut(message="password changed; sign in again")


# --- external OpenID Connect sign-in -------------------------------------------------


def _provider(name: str) -> Any:
    from functions.users import oidc

    provider = oidc.load_providers(svc.settings().oidc_providers_secret).get(name)
    if provider is None:
        raise errors.UnknownProviderError(f"no identity provider called {name!r}")
    return provider


def _callback_uri(name: str) -> str:
    return f"{svc.settings().base_url}/auth/oidc/{name}/callback"


@public_router.get(
    "/auth/oidc/{provider}/authorize",
    status_code=302,
    tags=["auth"],
    response_class=RedirectResponse,
    responses={302: {"description": "Redirect to the identity provider"}},
)
def handle_oidc_authorize(provider: str, deps: DepsDep) -> RedirectResponse:
    """Start signing in with an external provider (authorization code + PKCE)."""
    from functions.users import oidc

    url = oidc.authorization_url(_provider(provider), _callback_uri(provider), deps.tokens)
    return RedirectResponse(url, status_code=302)


@public_router.get("/auth/oidc/{provider}/callback", tags=["auth"], openapi_extra=OPEN_QUERY)
def handle_oidc_callback(
    provider: str,
    deps: DepsDep,
    state: Annotated[str, Query(min_length=1, max_length=200)],
    code: Annotated[str | None, Query(min_length=1, max_length=2048)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
    iss: Annotated[str | None, Query(max_length=500, description="RFC 9207 issuer")] = None,
) -> TokenOut:
    """Finish the external sign-in: links to or creates the account, returns tokens."""
    from functions.users import oidc

    ext = oidc.complete(
        _provider(provider), _callback_uri(provider), deps.tokens, code, state, error=error, iss=iss
    )
    user = logic.sign_in_external(deps, ext)
    return _tokens(logic.issue_tokens(deps, user))


# --- the signed-in user ---------------------------------------------------------------


def _patch(body: ProfilePatchIn) -> logic.ProfilePatch:
    mentor = (
        body.mentor_profile.model_dump(exclude_unset=True, mode="json")
        if body.mentor_profile
        else None
    )
    mentee = (
        body.mentee_profile.model_dump(exclude_unset=True, mode="json")
        if body.mentee_profile
        else None
    )
    return logic.ProfilePatch(
        display_name=body.display_name, timezone=body.timezone, mentor=mentor, mentee=mentee
    )


@user_router.get("/me", tags=["me"])
def handle_get_me(principal: CurrentPrincipal, deps: DepsDep) -> UserOut:
    """The signed-in account with its profiles."""
    return UserOut.from_domain(logic.get_user(deps, principal.user_id))


@user_router.patch("/me", tags=["me"])
def handle_patch_me(body: ProfilePatchIn, principal: CurrentPrincipal, deps: DepsDep) -> UserOut:
    """Change name, time zone, mentor or mentee profile (the matching role is needed)."""
    return UserOut.from_domain(logic.update_profile(deps, principal.user_id, _patch(body)))


@user_router.delete("/me", status_code=204, tags=["me"])
def handle_delete_me(principal: CurrentPrincipal, deps: DepsDep) -> Response:
    """Delete the account: personal data is erased, sessions are revoked."""
    logic.delete_account(deps, principal.user_id)
    return Response(status_code=204)


@user_router.get("/me/export", tags=["me"])
def handle_export_me(principal: CurrentPrincipal, deps: DepsDep) -> ExportOut:
    """Everything the platform holds about the signed-in user."""
    return ExportOut(**logic.export_account(deps, principal.user_id))


@user_router.post("/me/roles", tags=["me"])
def handle_add_role(body: AddRoleIn, principal: CurrentPrincipal, deps: DepsDep) -> UserOut:
    """Add the mentee or mentor role; switch to it with /auth/switch-role."""
    return UserOut.from_domain(logic.add_role(deps, principal.user_id, body.role))


@user_router.get("/users/{user_id}", tags=["users"])
def handle_get_user(user_id: str, principal: CurrentPrincipal, deps: DepsDep) -> UserOut:
    """An account by id: its owner or an admin."""
    logic.ensure_can_manage(principal.user_id, principal.is_admin, user_id)
    return UserOut.from_domain(logic.get_user(deps, user_id))


@user_router.patch("/users/{user_id}", tags=["users"])
def handle_patch_user(
    user_id: str, body: ProfilePatchIn, principal: CurrentPrincipal, deps: DepsDep
) -> UserOut:
    """Change an account by id: its owner or an admin."""
    logic.ensure_can_manage(principal.user_id, principal.is_admin, user_id)
    return UserOut.from_domain(logic.update_profile(deps, user_id, _patch(body)))


@user_router.get("/admin/users", tags=["admin"])
def handle_list_users(
    principal: CurrentPrincipal,
    deps: DepsDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> UserPage:
    """Every account, newest first (admins only)."""
    if not principal.is_admin:
        raise errors.NotYourAccountError("admins only")
    page = logic.list_users(deps, limit, cursor)
    return UserPage(
        items=[UserOut.from_domain(u) for u in page.items], next_cursor=page.next_cursor
    )


# --- discovery -------------------------------------------------------------------------


@public_router.get("/mentors", tags=["mentors"])
def handle_search_mentors(
    deps: DepsDep,
    skill: Annotated[Skill | None, Query()] = None,
    language: Annotated[Language | None, Query(description="ISO 639 code, e.g. en")] = None,
    currency: Annotated[
        Currency | None, Query(description="ISO 4217; needed for price filters")
    ] = None,
    min_price: Annotated[
        int | None, Query(ge=0, le=MAX_RATE, description="Minor units per hour")
    ] = None,
    max_price: Annotated[
        int | None, Query(ge=0, le=MAX_RATE, description="Minor units per hour")
    ] = None,
    sort: MentorSort = MentorSort.NEWEST,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> MentorPage:
    """Find listed mentors by skill, language and price (prices compare within one currency)."""
    query = MentorQuery(skill, language, currency, min_price, max_price, sort, limit, cursor)
    page = logic.search_mentors(deps, query)
    return MentorPage(
        items=[MentorOut.from_domain(u) for u in page.items], next_cursor=page.next_cursor
    )


@public_router.get("/mentors/{mentor_id}", tags=["mentors"])
def handle_get_mentor(mentor_id: str, deps: DepsDep) -> MentorOut:
    """A listed mentor's public profile."""
    return MentorOut.from_domain(logic.get_mentor(deps, mentor_id))


app = create_app(
    title="LinkWithMentor users API",
    version="1.0.0",
    description="Accounts, authentication, roles, profiles and mentor discovery.",
    routers=[public_router, user_router],
)
