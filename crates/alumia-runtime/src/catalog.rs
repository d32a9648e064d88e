//! The model catalogue (spec 03 §4, 11 §5): the built-in `dev/echo` plus
//! every configured provider's models, and the client for each.

use std::sync::{Arc, RwLock};

use alumia_core::agents::ModelLookup;
use alumia_models::anthropic::AnthropicClient;
use alumia_models::dev_echo::DevEcho;
use alumia_models::openai::OpenAiClient;
use alumia_models::{ApiSecret, CallPolicy, ModelClient, ProviderEndpoint};

pub const DEV_ECHO: &str = "dev/echo";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    OpenAi,
    Anthropic,
}

/// One model of a provider, as configured (`[[providers.models]]`).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    pub id: String,
    pub context_window: u64,
    pub max_output_tokens: u64,
    pub supports_tools: bool,
    pub supports_reasoning: bool,
    pub fast_sibling: Option<String>,
    pub input_microcredits_per_mtok: u64,
    pub output_microcredits_per_mtok: u64,
}

impl ModelSpec {
    /// What we assume of a model a provider lists without details.
    pub fn discovered(id: &str) -> Self {
        ModelSpec {
            id: id.to_string(),
            context_window: 128_000,
            max_output_tokens: 8_192,
            supports_tools: true,
            supports_reasoning: false,
            fast_sibling: None,
            input_microcredits_per_mtok: 0,
            output_microcredits_per_mtok: 0,
        }
    }
}

/// A configured provider (`[[providers]]` or the `ALUMIA_OPENAI_*` /
/// `ALUMIA_ANTHROPIC_*` variables).
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// Model ids become `<id>/<model>`.
    pub id: String,
    pub kind: ProviderKind,
    pub base_url: String,
    pub api_key: Option<ApiSecret>,
    /// `None`: read the provider's model list at start and every 10 minutes.
    pub models: Option<Vec<ModelSpec>>,
    pub policy: CallPolicy,
}

/// A catalogue row (`GET /api/v1/models`).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelEntry {
    /// `<provider>/<model>`.
    pub id: String,
    pub provider: String,
    /// The provider's own name for the model.
    pub model: String,
    pub spec: ModelSpec,
}

/// An org's own key for a provider (BYOK), already opened.
#[derive(Debug, Clone)]
pub struct Byok {
    pub api_key: ApiSecret,
    pub base_url: Option<String>,
}

pub struct Catalog {
    providers: Vec<ProviderConfig>,
    configured_default: Option<String>,
    entries: RwLock<Arc<[ModelEntry]>>,
    http: reqwest::Client,
}

fn dev_entry() -> ModelEntry {
    ModelEntry {
        id: DEV_ECHO.into(),
        provider: "dev".into(),
        model: "echo".into(),
        spec: ModelSpec {
            id: "echo".into(),
            context_window: 131_072,
            max_output_tokens: 32_000,
            supports_tools: true,
            supports_reasoning: true,
            fast_sibling: None,
            input_microcredits_per_mtok: 0,
            output_microcredits_per_mtok: 0,
        },
    }
}

impl Catalog {
    /// `dev/echo` only: the default when nothing is configured.
    pub fn dev_only() -> Self {
        Catalog::new(Vec::new(), None)
    }

    /// Providers with a fixed model list are in the catalogue at once; the
    /// others join at the first [`Catalog::refresh`].
    pub fn new(providers: Vec<ProviderConfig>, default_model: Option<String>) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        let catalog = Catalog {
            providers,
            configured_default: default_model,
            entries: RwLock::new(Arc::from(vec![dev_entry()])),
            http,
        };
        let fixed: Vec<(String, Vec<ModelSpec>)> = catalog
            .providers
            .iter()
            .filter_map(|p| p.models.clone().map(|m| (p.id.clone(), m)))
            .collect();
        catalog.install(fixed);
        catalog
    }

    pub fn providers(&self) -> &[ProviderConfig] {
        &self.providers
    }

    fn install(&self, lists: Vec<(String, Vec<ModelSpec>)>) {
        let mut entries = vec![dev_entry()];
        // Keep models of providers this refresh did not read.
        let current = self.entries();
        for p in &self.providers {
            match lists.iter().find(|(id, _)| *id == p.id) {
                Some((_, specs)) => entries.extend(specs.iter().map(|s| ModelEntry {
                    id: format!("{}/{}", p.id, s.id),
                    provider: p.id.clone(),
                    model: s.id.clone(),
                    spec: s.clone(),
                })),
                None => entries.extend(current.iter().filter(|e| e.provider == p.id).cloned()),
            }
        }
        *self.entries.write().unwrap_or_else(|e| e.into_inner()) = Arc::from(entries);
    }

    /// Reads the model list of every provider configured without one.
    /// A provider that cannot be reached keeps its previous list.
    pub async fn refresh(&self) {
        let mut lists = Vec::new();
        for p in self.providers.iter().filter(|p| p.models.is_none()) {
            match p.kind {
                ProviderKind::OpenAi => {
                    let client = OpenAiClient::new(self.http.clone(), endpoint(p, None));
                    match client.list_models().await {
                        Ok(ids) => lists.push((
                            p.id.clone(),
                            ids.iter().map(|id| ModelSpec::discovered(id)).collect(),
                        )),
                        Err(e) => {
                            tracing::warn!(provider = %p.id, error = %e, "model list not read")
                        }
                    }
                }
                ProviderKind::Anthropic => lists.push((
                    p.id.clone(),
                    ["claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1"]
                        .iter()
                        .map(|id| ModelSpec {
                            context_window: 200_000,
                            supports_reasoning: true,
                            ..ModelSpec::discovered(id)
                        })
                        .collect(),
                )),
            }
        }
        if !lists.is_empty() {
            self.install(lists);
        }
    }

    pub fn entries(&self) -> Arc<[ModelEntry]> {
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The server default: `ALUMIA_DEFAULT_MODEL` / `[agents] default_model`
    /// when it is in the catalogue, else the first configured model, else `dev/echo`.
    pub fn default_model(&self) -> String {
        let entries = self.entries();
        if let Some(id) = self
            .configured_default
            .as_deref()
            .and_then(|d| canonical_in(&entries, d))
        {
            return id;
        }
        entries
            .iter()
            .find(|e| e.provider != "dev")
            .map(|e| e.id.clone())
            .unwrap_or_else(|| DEV_ECHO.into())
    }

    pub fn resolve(&self, id: &str) -> Option<ModelEntry> {
        let entries = self.entries();
        let id = canonical_in(&entries, id)?;
        entries.iter().find(|e| e.id == id).cloned()
    }

    /// The client for one model call; an org key replaces the configured one.
    pub fn client(&self, entry: &ModelEntry, byok: Option<&Byok>) -> Option<Arc<dyn ModelClient>> {
        if entry.provider == "dev" {
            return Some(Arc::new(DevEcho));
        }
        let provider = self.providers.iter().find(|p| p.id == entry.provider)?;
        let endpoint = endpoint(provider, byok);
        Some(match provider.kind {
            ProviderKind::OpenAi => Arc::new(OpenAiClient::new(self.http.clone(), endpoint)),
            ProviderKind::Anthropic => Arc::new(AnthropicClient::new(self.http.clone(), endpoint)),
        })
    }
}

fn endpoint(p: &ProviderConfig, byok: Option<&Byok>) -> ProviderEndpoint {
    ProviderEndpoint {
        base_url: byok
            .and_then(|b| b.base_url.clone())
            .unwrap_or_else(|| p.base_url.clone()),
        api_key: byok
            .map(|b| b.api_key.clone())
            .or_else(|| p.api_key.clone()),
        policy: p.policy.clone(),
    }
}

fn canonical_in(entries: &[ModelEntry], id: &str) -> Option<String> {
    if entries.iter().any(|e| e.id == id) {
        return Some(id.to_string());
    }
    let mut bare = entries.iter().filter(|e| e.model == id);
    match (bare.next(), bare.next()) {
        (Some(one), None) => Some(one.id.clone()),
        _ => None,
    }
}

impl ModelLookup for Catalog {
    fn canonical(&self, id: &str) -> Option<String> {
        canonical_in(&self.entries(), id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(id: &str, models: &[&str]) -> ProviderConfig {
        ProviderConfig {
            id: id.into(),
            kind: ProviderKind::OpenAi,
            base_url: "http://127.0.0.1:9/v1".into(),
            api_key: None,
            models: Some(models.iter().map(|m| ModelSpec::discovered(m)).collect()),
            policy: CallPolicy::default(),
        }
    }

    #[test]
    fn bare_ids_resolve_only_when_one_provider_offers_them() {
        let catalog = Catalog::new(
            vec![provider("a", &["m1", "shared"]), provider("b", &["shared"])],
            None,
        );
        assert_eq!(catalog.canonical("m1").as_deref(), Some("a/m1"));
        assert_eq!(catalog.canonical("b/shared").as_deref(), Some("b/shared"));
        assert_eq!(catalog.canonical("shared"), None);
        assert_eq!(catalog.canonical("echo").as_deref(), Some("dev/echo"));
        assert_eq!(catalog.canonical("nope"), None);
    }

    #[test]
    fn default_model_prefers_configured_then_first_provider_then_dev() {
        assert_eq!(Catalog::dev_only().default_model(), "dev/echo");
        let first = Catalog::new(vec![provider("a", &["m1"])], None);
        assert_eq!(first.default_model(), "a/m1");
        let configured = Catalog::new(vec![provider("a", &["m1", "m2"])], Some("m2".into()));
        assert_eq!(configured.default_model(), "a/m2");
        let unknown = Catalog::new(vec![provider("a", &["m1"])], Some("zzz".into()));
        assert_eq!(unknown.default_model(), "a/m1");
    }
}
