"""Turn settings into connection credentials: plain env forms locally, Secrets Manager in AWS."""

from __future__ import annotations

from urllib.parse import quote, unquote, urlencode, urlsplit

from app.log import register_secrets
from app.secret_store import SecretStore
from app.settings import Settings, SettingsError, is_placeholder


def redis_url(settings: Settings, store: SecretStore | None) -> str:
    """The broker URL. In AWS the AUTH token is read once at start-up: ElastiCache accepts the old and
    the new token during a rotation, so a rolling restart picks the new one up without downtime."""
    if settings.redis_url is not None:
        url = settings.redis_url.get_secret_value()
        password = urlsplit(url).password or ""
        register_secrets(password, unquote(password))
        return url
    scheme = "rediss" if settings.redis_tls else "redis"
    auth = ""
    if settings.redis_auth_secret_arn:
        if store is None:
            raise SettingsError("REDIS_AUTH_SECRET_ARN needs Secrets Manager access")
        token = store.get_string(settings.redis_auth_secret_arn).strip()
        if not token or is_placeholder(token):
            raise SettingsError("the secret named by REDIS_AUTH_SECRET_ARN is empty or a placeholder")
        auth = f":{quote(token, safe='')}@"
        register_secrets(quote(token, safe=""))  # the token as it appears in the URL
    query = _tls_query(settings) if settings.redis_tls else ""
    return f"{scheme}://{auth}{settings.redis_host}:{settings.redis_port}/{settings.redis_db}{query}"


def _tls_query(settings: Settings) -> str:
    """redis-py and kombu read these from the URL: the certificate must chain to a trusted CA and name the
    host connected to (redis-py checks host names by default; said here so no default can drop it)."""
    query = {"ssl_cert_reqs": "required", "ssl_check_hostname": "true"}
    if settings.redis_ssl_ca_certs:
        query["ssl_ca_certs"] = settings.redis_ssl_ca_certs
    return "?" + urlencode(query)


def llm_api_key(settings: Settings, store: SecretStore | None) -> str:
    """Read per use (through the cache) so a rotated key is picked up within the TTL."""
    if settings.llm_api_key is not None:
        key = settings.llm_api_key.get_secret_value()
        register_secrets(key)
        return key
    if store is None or settings.llm_api_key_secret_arn is None:
        raise SettingsError("LLM_API_KEY_SECRET_ARN needs Secrets Manager access")
    return store.get_string(settings.llm_api_key_secret_arn).strip()


def owner_credentials(settings: Settings, store: SecretStore | None) -> tuple[str, str]:
    """The RDS-managed master user, used by migrations and the admin CLI only."""
    if settings.database_master_secret_arn is None or store is None:
        raise SettingsError("DATABASE_OWNER_URL or DATABASE_MASTER_SECRET_ARN is required for this command")
    secret = store.get_json(settings.database_master_secret_arn)
    username, password = secret.get("username"), secret.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        raise SettingsError("the secret named by DATABASE_MASTER_SECRET_ARN lacks username/password")
    return username, password
