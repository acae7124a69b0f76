//! The one place that assembles the service: [`ServiceBuilder`], with in-memory defaults and a
//! settable clock, used by the binary (`environment`: adapters chosen from the environment),
//! the demo, the tests, the examples and the benches.
//!
//! - [`environment`]: `serve` / Lambda / operator set-up from environment variables (DynamoDB,
//!   Secrets Manager, or memory), and the embedded routes file;
//! - [`routes`]: routes built from the routes file (secrets, verifiers, filters).

pub mod environment;
pub mod routes;

pub use environment::{Mode, EMBEDDED_ROUTES};

use crate::app::password::PasswordProvider;
use crate::app::token::TokenManager;
use crate::app::worker::WorkerSettings;
use crate::app::{Bridge, Limits};
use crate::config::routes::RoutesFile;
use crate::config::{ConfigError, Settings};
use crate::panel::LimitedPanel;
use crate::panel::{PanelClient, PanelClientConfig};
use crate::ports::{Clock, DeliveryStore, PanelApi, Queue, SecretSource, SystemClock, TokenStore};
use crate::secrets::SecretResolver;
use crate::store::memory::{MemoryDeliveryStore, MemoryTokenStore};
use std::num::NonZeroU32;
use std::sync::Arc;

/// Builds a [`Bridge`]. Anything not given is the local default: in-memory stores, the
/// environment's secrets (`env:` references), the system clock, and the panel client on
/// `PANEL_URL`.
pub struct ServiceBuilder {
    settings: Settings,
    routes: Option<RoutesFile>,
    panel: Option<Arc<dyn PanelApi>>,
    tokens: Option<Arc<dyn TokenStore>>,
    deliveries: Option<Arc<dyn DeliveryStore>>,
    secrets: Option<Arc<dyn SecretSource>>,
    clock: Arc<dyn Clock>,
    password_ref: Option<String>,
    queue: Option<Arc<dyn Queue>>,
    panel_limits: Option<(usize, Option<NonZeroU32>)>,
}

impl ServiceBuilder {
    pub fn new(settings: Settings) -> Self {
        ServiceBuilder {
            password_ref: settings.password_ref.clone(),
            settings,
            routes: None,
            panel: None,
            tokens: None,
            deliveries: None,
            secrets: None,
            clock: Arc::new(SystemClock),
            queue: None,
            panel_limits: None,
        }
    }

    /// The queue of queued routes (required when a route is queued).
    pub fn queue(mut self, queue: Arc<dyn Queue>) -> Self {
        self.queue = Some(queue);
        self
    }

    /// Puts the panel behind the worker's ceilings: `concurrency` calls in flight, `rate` calls
    /// per second (None = no limit).
    pub fn panel_limits(mut self, concurrency: usize, rate: Option<u32>) -> Self {
        self.panel_limits = Some((concurrency, rate.and_then(NonZeroU32::new)));
        self
    }

    /// The panel limits from the settings (`BRIDGE_WORKER_CONCURRENCY`, `BRIDGE_PANEL_RATE`).
    pub fn settings_panel_limits(self) -> Self {
        let (c, r) = (self.settings.worker_concurrency, self.settings.panel_rate);
        self.panel_limits(c, r)
    }

    /// The worker's settings from the settings.
    pub fn worker_settings(settings: &Settings) -> WorkerSettings {
        WorkerSettings {
            concurrency: settings.worker_concurrency,
            retry_base_secs: settings.retry_base_secs,
            ..WorkerSettings::default()
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn routes(mut self, file: RoutesFile) -> Self {
        self.routes = Some(file);
        self
    }

    /// Routes from YAML text (`origin` names it in errors).
    pub fn routes_yaml(self, yaml: &str, origin: &str) -> Result<Self, ConfigError> {
        Ok(self.routes(RoutesFile::parse(yaml, origin)?))
    }

    pub fn panel(mut self, panel: Arc<dyn PanelApi>) -> Self {
        self.panel = Some(panel);
        self
    }

    pub fn tokens(mut self, tokens: Arc<dyn TokenStore>) -> Self {
        self.tokens = Some(tokens);
        self
    }

    pub fn deliveries(mut self, deliveries: Arc<dyn DeliveryStore>) -> Self {
        self.deliveries = Some(deliveries);
        self
    }

    pub fn secrets(mut self, secrets: Arc<dyn SecretSource>) -> Self {
        self.secrets = Some(secrets);
        self
    }

    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Where the panel password is read (default: the settings' `PANEL_PASSWORD_SECRET_ID` or
    /// `PANEL_PASSWORD`).
    pub fn password_ref(mut self, reference: impl Into<String>) -> Self {
        self.password_ref = Some(reference.into());
        self
    }

    /// The limits from the settings.
    pub fn limits(settings: &Settings) -> Limits {
        Limits {
            max_body_bytes: settings.max_body_bytes,
            retention_secs: settings.retention_secs(),
            in_progress_timeout_secs: settings.in_progress_timeout_secs,
            batch_concurrency: settings.batch_concurrency,
            panel_request_timeout_ms: settings.panel_request_timeout.as_millis() as i64,
        }
    }

    /// The panel client the settings describe (`PANEL_URL`, timeouts).
    pub fn panel_client(settings: &Settings) -> Result<PanelClient, ConfigError> {
        let base_url = settings
            .panel_url
            .clone()
            .ok_or_else(|| ConfigError("PANEL_URL is not set: the panel's base URL".into()))?;
        PanelClient::new(&PanelClientConfig {
            base_url,
            connect_timeout: settings.panel_connect_timeout,
            request_timeout: settings.panel_request_timeout,
        })
        .map_err(|e| ConfigError(e.to_string()))
    }

    /// Resolves the routes' secrets, builds the routes and assembles the bridge.
    pub async fn build(self) -> Result<Bridge, ConfigError> {
        let routes = self.routes.ok_or_else(|| {
            ConfigError("no routes: give the service a routes file (BRIDGE_CONFIG)".into())
        })?;
        let password_ref = self.password_ref.ok_or_else(|| {
            ConfigError(
                "no panel password: set PANEL_PASSWORD_SECRET_ID (Secrets Manager) or, locally, PANEL_PASSWORD".into(),
            )
        })?;
        let secrets = self
            .secrets
            .unwrap_or_else(|| Arc::new(SecretResolver::without_aws()));
        let built = routes::build_routes(&routes, secrets.as_ref()).await?;
        let mut panel: Arc<dyn PanelApi> = match self.panel {
            Some(p) => p,
            None => Arc::new(Self::panel_client(&self.settings)?),
        };
        if let Some((concurrency, rate)) = self.panel_limits {
            panel = Arc::new(LimitedPanel::new(panel, concurrency, rate));
        }
        if self.queue.is_none() {
            if let Some(r) = built
                .iter()
                .find(|r| r.mode == crate::domain::queue::RouteMode::Queued)
            {
                return Err(ConfigError(format!(
                    "route `{}` is queued (mode: queued) but there is no queue: set BRIDGE_QUEUE_URL",
                    r.name
                )));
            }
        }
        let deliveries = self
            .deliveries
            .unwrap_or_else(|| Arc::new(MemoryDeliveryStore::default()));
        let token_store = self
            .tokens
            .unwrap_or_else(|| Arc::new(MemoryTokenStore::default()));
        let password = PasswordProvider::new(secrets, password_ref);
        let tokens = Arc::new(TokenManager::new(
            panel.clone(),
            token_store,
            password,
            self.clock.clone(),
            self.settings.token.clone(),
        ));
        let bridge = Bridge::new(
            built,
            panel,
            tokens,
            deliveries,
            self.clock,
            Self::limits(&self.settings),
        );
        Ok(match self.queue {
            Some(queue) => bridge.with_queue(queue),
            None => bridge,
        })
    }
}
