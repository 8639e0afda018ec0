//! The port through which the registry client keeps what its bearer-token dance taught it beyond
//! one process — the token realm of each registry, and tokens until shortly before they expire —
//! and through which the next process (every `exec` is one) starts from it.
//!
//! The store implements it; the client holds it as `Arc<dyn AuthMemory>` and treats whatever
//! it reads as a hint (a refused token or a dead realm sends it back to the full dance), so every
//! method may fail without failing a check: the client logs the error and asks the registry.

use secrecy::SecretString;

/// Why the memory could not be read or written; never carries a token.
pub type MemoryError = Box<dyn std::error::Error + Send + Sync>;

/// Where a registry's tokens come from, as its `WWW-Authenticate` challenge said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryRealm {
    /// The token endpoint, an http(s) URL.
    pub realm: String,
    pub service: Option<String>,
}

/// What the registry's token dance taught, kept per registry (its base URL).
#[async_trait::async_trait]
pub trait AuthMemory: Send + Sync + std::fmt::Debug {
    /// The realm last learnt for `registry`, if any.
    async fn realm(&self, registry: &str) -> Result<Option<RegistryRealm>, MemoryError>;

    async fn remember_realm(
        &self,
        registry: &str,
        realm: &RegistryRealm,
    ) -> Result<(), MemoryError>;

    /// Forgets the realm of `registry` and every token kept for it.
    async fn forget_realm(&self, registry: &str) -> Result<(), MemoryError>;

    /// The token kept for `scope` on `registry` with the moment it stops being usable (ms since
    /// the epoch), if one is kept that is still usable at `now_ms`.
    async fn token(
        &self,
        registry: &str,
        scope: &str,
        now_ms: i64,
    ) -> Result<Option<(SecretString, i64)>, MemoryError>;

    /// Keeps `token` for `scope` until `usable_until_ms`, replacing the scope's previous one.
    async fn remember_token(
        &self,
        registry: &str,
        scope: &str,
        token: &SecretString,
        usable_until_ms: i64,
    ) -> Result<(), MemoryError>;

    /// Forgets the token for `scope` on `registry` (the registry refused it).
    async fn forget_token(&self, registry: &str, scope: &str) -> Result<(), MemoryError>;
}
