//! The panel token, layered: memory (no I/O on a warm instance), then the shared token store
//! (one read on a cold start), then `/api/authenticate` under a lease so that a burst of cold
//! instances authenticates about once.

use super::password::PasswordProvider;
use crate::error::{BridgeError, ErrorKind};
use crate::ports::{CachedToken, Clock, PanelApi, PanelOutcome, Secret, TokenStore};
use base64::Engine;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::time::Instant;

/// Token lifetime when the token carries no `exp` claim (the API document says 24 hours).
pub const DEFAULT_TOKEN_LIFETIME_SECS: i64 = 24 * 3600;

/// Tuning of the token cache.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// Refresh this many seconds before the token expires.
    pub refresh_margin_secs: i64,
    /// How long a refresh lease lasts if its holder dies.
    pub lease_ttl_secs: i64,
    /// How long an instance that lost the lease race waits for the winner's token before
    /// authenticating itself.
    pub lease_wait: Duration,
    /// Poll interval while waiting.
    pub lease_poll: Duration,
}

impl Default for TokenSettings {
    fn default() -> Self {
        TokenSettings {
            refresh_margin_secs: 300,
            lease_ttl_secs: 15,
            lease_wait: Duration::from_secs(3),
            lease_poll: Duration::from_millis(100),
        }
    }
}

/// Expiry of a token: its JWT `exp` claim when it has one, else `issued_at` + 24 h.
pub fn token_expiry(token: &str, issued_at: i64) -> i64 {
    let exp = token.split('.').nth(1).and_then(|payload| {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .ok()?;
        let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        claims.get("exp")?.as_i64()
    });
    match exp {
        Some(exp) if exp > issued_at => exp,
        _ => issued_at + DEFAULT_TOKEN_LIFETIME_SECS,
    }
}

pub struct TokenManager {
    panel: Arc<dyn PanelApi>,
    store: Arc<dyn TokenStore>,
    password: PasswordProvider,
    clock: Arc<dyn Clock>,
    settings: TokenSettings,
    owner: String,
    current: RwLock<Option<CachedToken>>,
    refresh: tokio::sync::Mutex<()>,
}

impl TokenManager {
    pub fn new(
        panel: Arc<dyn PanelApi>,
        store: Arc<dyn TokenStore>,
        password: PasswordProvider,
        clock: Arc<dyn Clock>,
        settings: TokenSettings,
    ) -> Self {
        let owner = format!(
            "{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
        );
        TokenManager {
            panel,
            store,
            password,
            clock,
            settings,
            owner,
            current: RwLock::new(None),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    fn usable(&self, t: &CachedToken) -> bool {
        t.expires_at - self.settings.refresh_margin_secs > self.clock.now()
    }

    fn in_memory(&self) -> Option<Secret> {
        let guard = self.current.read().unwrap_or_else(|p| p.into_inner());
        guard
            .as_ref()
            .filter(|t| self.usable(t))
            .map(|t| t.token.clone())
    }

    fn remember(&self, t: CachedToken) -> Secret {
        let token = t.token.clone();
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(t);
        token
    }

    /// A token to call the panel with. A warm instance answers from memory with no I/O.
    pub async fn token(&self) -> Result<Secret, BridgeError> {
        if let Some(t) = self.in_memory() {
            return Ok(t);
        }
        // Single flight inside the instance: one task refreshes, the others wait and reuse.
        let _guard = self.refresh.lock().await;
        if let Some(t) = self.in_memory() {
            return Ok(t);
        }
        self.refresh_locked().await
    }

    /// The panel refused `failed`: forget it here and in the shared store, but only if it is
    /// still the current one (another instance may already have stored a newer token).
    pub async fn refused(&self, failed: &Secret) {
        {
            let mut cur = self.current.write().unwrap_or_else(|p| p.into_inner());
            if cur.as_ref().is_some_and(|t| &t.token == failed) {
                *cur = None;
            }
        }
        if let Err(e) = self.store.invalidate(failed).await {
            tracing::warn!(error = %e, "could not invalidate the shared panel token");
        }
    }

    async fn load_shared(&self) -> Result<Option<CachedToken>, ()> {
        match self.store.load().await {
            Ok(t) => Ok(t.filter(|t| self.usable(t))),
            Err(e) => {
                tracing::warn!(error = %e, "token store unavailable; authenticating directly");
                Err(())
            }
        }
    }

    async fn refresh_locked(&self) -> Result<Secret, BridgeError> {
        match self.load_shared().await {
            Ok(Some(t)) => return Ok(self.remember(t)),
            Ok(None) => {}
            Err(()) => return self.authenticate_and_save().await,
        }
        let now = self.clock.now();
        match self
            .store
            .try_lease(&self.owner, now, self.settings.lease_ttl_secs)
            .await
        {
            Ok(true) => {
                let result = self.authenticate_and_save().await;
                if let Err(e) = self.store.release_lease(&self.owner).await {
                    tracing::warn!(error = %e, "could not release the token lease");
                }
                result
            }
            Ok(false) => {
                // Another instance is refreshing: wait a bounded time for its token.
                let deadline = Instant::now() + self.settings.lease_wait;
                while Instant::now() < deadline {
                    tokio::time::sleep(self.settings.lease_poll).await;
                    match self.load_shared().await {
                        Ok(Some(t)) => return Ok(self.remember(t)),
                        Ok(None) => {}
                        Err(()) => break,
                    }
                }
                tracing::info!("token lease holder did not deliver in time; authenticating");
                self.authenticate_and_save().await
            }
            Err(e) => {
                tracing::warn!(error = %e, "token lease unavailable; authenticating directly");
                self.authenticate_and_save().await
            }
        }
    }

    async fn authenticate_and_save(&self) -> Result<Secret, BridgeError> {
        let password = self.password.get().await.map_err(password_unreadable)?;
        let token = match self.authenticate(&password).await? {
            Some(token) => token,
            None => {
                // Refused: the secret may have been rotated. Read it again, once.
                let fresh = self.password.refresh().await.map_err(password_unreadable)?;
                let retried = if fresh != password {
                    tracing::info!("panel password re-read after a refusal");
                    self.authenticate(&fresh).await?
                } else {
                    None
                };
                retried.ok_or_else(|| {
                    BridgeError::new(
                        ErrorKind::PanelAuthFailed,
                        "the panel refused the configured password; check the panel password secret",
                    )
                })?
            }
        };
        let now = self.clock.now();
        let cached = CachedToken {
            expires_at: token_expiry(token.expose(), now),
            token,
        };
        if let Err(e) = self.store.save(&cached).await {
            tracing::warn!(error = %e, "could not share the new panel token");
        }
        Ok(self.remember(cached))
    }

    /// One authenticate call. `Ok(None)` when the password was refused.
    async fn authenticate(&self, password: &Secret) -> Result<Option<Secret>, BridgeError> {
        tracing::info!("authenticating at the panel");
        match self.panel.authenticate(password).await {
            PanelOutcome::Done(token) => Ok(Some(token)),
            PanelOutcome::Rejected { .. } | PanelOutcome::TokenRefused => Ok(None),
            PanelOutcome::NotSent(reason) | PanelOutcome::Unknown(reason) => {
                tracing::warn!(%reason, "panel authenticate failed");
                Err(BridgeError::new(
                    ErrorKind::PanelUnavailable,
                    "the panel could not be reached to authenticate; nothing was sent, retry later",
                ))
            }
        }
    }
}

fn password_unreadable(e: crate::ports::StoreError) -> BridgeError {
    tracing::error!(error = %e, "cannot read the panel password");
    BridgeError::new(
        ErrorKind::PanelUnavailable,
        "the panel password could not be read; nothing was sent, retry later",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &str) -> String {
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.sig",
            e.encode(r#"{"alg":"HS256"}"#),
            e.encode(claims)
        )
    }

    #[test]
    fn expiry_from_jwt_exp() {
        assert_eq!(token_expiry(&jwt(r#"{"exp":2000}"#), 1000), 2000);
    }

    #[test]
    fn expiry_defaults_to_24h() {
        assert_eq!(token_expiry("opaque-token", 1000), 1000 + 86400);
        assert_eq!(token_expiry(&jwt(r#"{"sub":"x"}"#), 1000), 1000 + 86400);
        // An exp in the past is not believed.
        assert_eq!(token_expiry(&jwt(r#"{"exp":10}"#), 1000), 1000 + 86400);
    }
}
