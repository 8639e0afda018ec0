//! What the registry's bearer-token dance taught one process, for the next one: the token realm
//! of each registry, and anonymous pull tokens until shortly before they expire (migration 0005
//! says why tokens obtained with credentials are never stored). The store is the registry
//! client's [`AuthMemory`].
//!
//! The registry client treats all of it as a hint: whatever it reads here may be stale, and a
//! refused token or a realm that no longer answers sends it back to the full dance.

use secrecy::{ExposeSecret, SecretString};
use sqlx::Row;

use super::{Result, Store, now_ms};
use crate::auth_memory::{AuthMemory, MemoryError, RegistryRealm};

impl Store {
    /// The realm last learnt for `registry` (its base URL), if any.
    pub async fn registry_realm(&self, registry: &str) -> Result<Option<RegistryRealm>> {
        let row = sqlx::query("SELECT realm, service FROM registry_realms WHERE registry = $1")
            .bind(registry)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(RegistryRealm {
                realm: r.try_get("realm")?,
                service: r.try_get("service")?,
            })
        })
        .transpose()
    }

    pub async fn remember_registry_realm(
        &self,
        registry: &str,
        realm: &RegistryRealm,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO registry_realms (registry, realm, service, learned_ms) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (registry) DO UPDATE \
             SET realm = excluded.realm, service = excluded.service, learned_ms = excluded.learned_ms",
        )
        .bind(registry)
        .bind(&realm.realm)
        .bind(realm.service.as_deref())
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets the realm of `registry` and every token stored for it.
    pub async fn forget_registry_realm(&self, registry: &str) -> Result<()> {
        sqlx::query("DELETE FROM registry_realms WHERE registry = $1")
            .bind(registry)
            .execute(&self.pool)
            .await?;
        sqlx::query("DELETE FROM registry_tokens WHERE registry = $1")
            .bind(registry)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The stored token for `scope` on `registry` with its expiry (ms since the epoch), if one
    /// is stored that is still usable at `now_ms`.
    pub async fn registry_token(
        &self,
        registry: &str,
        scope: &str,
        now_ms: i64,
    ) -> Result<Option<(SecretString, i64)>> {
        let row = sqlx::query(
            "SELECT token, expires_ms FROM registry_tokens \
             WHERE registry = $1 AND scope = $2 AND expires_ms > $3",
        )
        .bind(registry)
        .bind(scope)
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let token: String = r.try_get("token")?;
            Ok((SecretString::from(token), r.try_get("expires_ms")?))
        })
        .transpose()
    }

    /// Stores a token until `expires_ms`, replacing the scope's previous one, and drops tokens
    /// that have expired (they are of no use to anyone).
    pub async fn remember_registry_token(
        &self,
        registry: &str,
        scope: &str,
        token: &SecretString,
        expires_ms: i64,
    ) -> Result<()> {
        sqlx::query("DELETE FROM registry_tokens WHERE expires_ms <= $1")
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO registry_tokens (registry, scope, token, expires_ms) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (registry, scope) DO UPDATE \
             SET token = excluded.token, expires_ms = excluded.expires_ms",
        )
        .bind(registry)
        .bind(scope)
        .bind(token.expose_secret())
        .bind(expires_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets the token for `scope` on `registry` (the registry refused it).
    pub async fn forget_registry_token(&self, registry: &str, scope: &str) -> Result<()> {
        sqlx::query("DELETE FROM registry_tokens WHERE registry = $1 AND scope = $2")
            .bind(registry)
            .bind(scope)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl AuthMemory for Store {
    async fn realm(&self, registry: &str) -> Result<Option<RegistryRealm>, MemoryError> {
        Ok(self.registry_realm(registry).await?)
    }

    async fn remember_realm(
        &self,
        registry: &str,
        realm: &RegistryRealm,
    ) -> Result<(), MemoryError> {
        Ok(self.remember_registry_realm(registry, realm).await?)
    }

    async fn forget_realm(&self, registry: &str) -> Result<(), MemoryError> {
        Ok(self.forget_registry_realm(registry).await?)
    }

    async fn token(
        &self,
        registry: &str,
        scope: &str,
        now_ms: i64,
    ) -> Result<Option<(SecretString, i64)>, MemoryError> {
        Ok(self.registry_token(registry, scope, now_ms).await?)
    }

    async fn remember_token(
        &self,
        registry: &str,
        scope: &str,
        token: &SecretString,
        usable_until_ms: i64,
    ) -> Result<(), MemoryError> {
        Ok(self
            .remember_registry_token(registry, scope, token, usable_until_ms)
            .await?)
    }

    async fn forget_token(&self, registry: &str, scope: &str) -> Result<(), MemoryError> {
        Ok(self.forget_registry_token(registry, scope).await?)
    }
}
