//! The gateway's HTTP API: OpenAI's `/v1` in front of the providers, as layers in this order:
//! [`authenticate`] (the API key), [`meter`] (the checks, the rate limit and the token
//! reservation), then routing and the streaming proxy ([`crate::proxy`]). Beside them:
//! `GET /v1/models` (models registered providers serve now), `GET /v1/pricing` (the tiers),
//! `GET /v1/account` (the key's subscription and quota) and `POST /v1/keys` (a key from a
//! signature made in a wallet, e.g. MetaMask's `eth_signTypedData_v4`).

use std::sync::Arc;

use aicoin_api::signed::unix_now;
use aicoin_api::{
    ApiError,
    inspect::{Endpoint, Inspected, inspect},
};
use aicoin_primitives::{AIC, modules::API_ACCESS_ADDRESS, registry::ModelCategory};
use alloy_primitives::{Address, Signature};
use axum::{
    Json, Router,
    body::{Body, Bytes, to_bytes},
    extract::{DefaultBodyLimit, Path, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{Value, json};
use tower_http::cors::{Any, CorsLayer};

use crate::{
    ApiKey, KeyError,
    chain::{ChainView, Subscription, Tier},
    count::{Count, Counters},
    keys,
    proxy::{Forwarder, Outbound},
    quota::{Budget, QuotaError, Quotas, RateState, Reservation},
};

/// Largest request body, as the providers' own API takes.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Prompts longer than this are counted off the async workers.
const COUNT_INLINE_BYTES: usize = 64 * 1024;

/// What the handlers share.
pub struct Gateway {
    pub chain_id: u64,
    /// Seconds per block, to show expiries as times.
    pub block_seconds: f64,
    pub chain: Arc<ChainView>,
    pub quotas: Arc<Quotas>,
    pub counters: Arc<Counters>,
    pub forwarder: Forwarder,
    /// Models run here as pipelines of shards.
    pub pipelines: Arc<crate::pipeline::Pipelines>,
}

/// The caller a key speaks for, after [`authenticate`].
#[derive(Clone, Copy)]
struct Caller {
    account: Address,
    subscription: Subscription,
}

/// A request that passed [`meter`], ready to route.
struct Metered {
    endpoint: Endpoint,
    body: Bytes,
    inspected: Inspected,
    prompt_tokens: u64,
    reservation: Reservation,
    rate: RateState,
    budget: Budget,
}

/// What `meter` hands the handler (extensions must be `Clone`).
#[derive(Clone)]
struct Ticket(Arc<Mutex<Option<Metered>>>);

pub fn router(gateway: Arc<Gateway>) -> Router {
    let inference = Router::new()
        .route("/v1/chat/completions", post(forward))
        .route("/v1/completions", post(forward))
        .route("/v1/embeddings", post(forward))
        .layer(middleware::from_fn_with_state(gateway.clone(), meter));
    let keyed = inference
        .route("/v1/account", get(account))
        .layer(middleware::from_fn_with_state(
            gateway.clone(),
            authenticate,
        ));
    keyed
        .route("/v1/models", get(models))
        .route("/v1/models/{id}", get(model))
        .route("/v1/pricing", get(pricing))
        .route("/v1/keys", post(create_key))
        .route("/health", get(|| async { Json(json!({ "status": "ok" })) }))
        .fallback(|| async {
            ApiError {
                status: StatusCode::NOT_FOUND,
                ..ApiError::invalid(
                    "Unknown path: this gateway serves /v1/models, /v1/chat/completions, \
                     /v1/completions, /v1/embeddings, /v1/account, /v1/pricing and /v1/keys",
                    None,
                )
            }
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(gateway)
        .layer(
            CorsLayer::new()
                .allow_origin(Any)
                .allow_methods(Any)
                .allow_headers(Any)
                .expose_headers(Any),
        )
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
}

fn chain_error(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "the gateway cannot read the chain");
    ApiError::server(format!("the gateway cannot read the chain: {e}"))
}

/// The first layer: a valid key of this chain, unexpired and of the account's current key
/// generation (401 otherwise).
async fn authenticate(
    State(gateway): State<Arc<Gateway>>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(text) = bearer(request.headers()) else {
        return ApiError::unauthorized(
            "no API key: send `Authorization: Bearer aic_…` (create one with `aicoin api-key \
             create`, or POST /v1/keys)",
        )
        .into_response();
    };
    let key = match ApiKey::decode(text) {
        Ok(key) => key,
        Err(e) => return ApiError::unauthorized(e.to_string()).into_response(),
    };
    let subscription = match gateway.chain.subscription(key.account) {
        Ok(subscription) => subscription,
        Err(e) => return chain_error(e).into_response(),
    };
    if let Err(e) = key.check(gateway.chain_id, unix_now(), subscription.key_generation) {
        return ApiError::unauthorized(e.to_string()).into_response();
    }
    request.extensions_mut().insert(Caller {
        account: key.account,
        subscription,
    });
    next.run(request).await
}

fn endpoint_of(path: &str) -> Option<Endpoint> {
    [Endpoint::Chat, Endpoint::Completions, Endpoint::Embeddings]
        .into_iter()
        .find(|e| e.path() == path)
}

fn no_tier(account: Address, subscription: &Subscription) -> ApiError {
    let why = match subscription.tier {
        0 => format!("{account} has no API tier"),
        _ => format!(
            "{account}'s API tier expired at block {}",
            subscription.expires_at
        ),
    };
    ApiError {
        status: StatusCode::PAYMENT_REQUIRED,
        kind: "insufficient_quota",
        code: Some("insufficient_quota"),
        ..ApiError::invalid(
            format!(
                "{why}: buy one with IApiAccess.buy(tier) at {API_ACCESS_ADDRESS} (see GET \
                 /v1/pricing)"
            ),
            None,
        )
    }
}

fn quota_error(error: QuotaError) -> ApiError {
    match error {
        QuotaError::RateLimited { retry_after, .. } => ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            kind: "rate_limit_error",
            code: Some("rate_limit_exceeded"),
            retry_after: Some(retry_after),
            ..ApiError::invalid(error.to_string(), None)
        },
        QuotaError::Budget { .. } => ApiError {
            status: StatusCode::PAYMENT_REQUIRED,
            kind: "insufficient_quota",
            code: Some("insufficient_quota"),
            ..ApiError::invalid(error.to_string(), Some("max_tokens"))
        },
    }
}

fn tier_of(gateway: &Gateway, tier: u8) -> Option<Tier> {
    gateway
        .chain
        .snapshot()
        .tiers
        .iter()
        .find(|t| t.id == tier)
        .cloned()
}

/// `x-ratelimit-*` as OpenAI sends them.
fn rate_headers(headers: &mut HeaderMap, rate: Option<RateState>, budget: &Budget, now: u64) {
    let mut put = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    if let Some(rate) = rate {
        put("x-ratelimit-limit-requests", rate.limit.to_string());
        put("x-ratelimit-remaining-requests", rate.remaining.to_string());
    }
    put("x-ratelimit-limit-tokens", budget.limit.to_string());
    put("x-ratelimit-remaining-tokens", budget.left().to_string());
    put(
        "x-ratelimit-reset-tokens",
        format!("{}s", budget.resets_at.saturating_sub(now)),
    );
}

/// The second layer: the request's checks (refused here, never forwarded), an active tier
/// (402), the rate limit (429) and the token reservation (402).
async fn meter(State(gateway): State<Arc<Gateway>>, request: Request, next: Next) -> Response {
    let now = unix_now();
    let (parts, body) = request.into_parts();
    let Some(endpoint) = endpoint_of(parts.uri.path()) else {
        return next.run(Request::from_parts(parts, Body::empty())).await;
    };
    let Some(caller) = parts.extensions.get::<Caller>().copied() else {
        return ApiError::unauthorized("no API key").into_response();
    };
    let body = match to_bytes(body, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(e) => {
            return ApiError {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                ..ApiError::invalid(format!("The request body could not be read: {e}"), None)
            }
            .into_response();
        }
    };
    let metered = match admit(&gateway, caller, endpoint, body, now).await {
        Ok(metered) => metered,
        Err((error, rate, budget)) => {
            let mut response = error.into_response();
            if let Some(budget) = budget {
                rate_headers(response.headers_mut(), rate, &budget, now);
            }
            return response;
        }
    };
    let (rate, budget) = (metered.rate, metered.budget);
    let mut request = Request::from_parts(parts, Body::empty());
    request
        .extensions_mut()
        .insert(Ticket(Arc::new(Mutex::new(Some(metered)))));
    let mut response = next.run(request).await;
    rate_headers(response.headers_mut(), Some(rate), &budget, now);
    response
}

type Refusal = (ApiError, Option<RateState>, Option<Budget>);

async fn admit(
    gateway: &Arc<Gateway>,
    caller: Caller,
    endpoint: Endpoint,
    body: Bytes,
    now: u64,
) -> Result<Metered, Refusal> {
    let bare = |e: ApiError| (e, None, None);
    // The tier and the rate first: a key of an account with nothing to spend costs the gateway
    // no parsing or tokenizing.
    let subscription = caller.subscription;
    let tier = tier_of(gateway, subscription.tier)
        .filter(|_| subscription.active)
        .ok_or_else(|| bare(no_tier(caller.account, &subscription)))?;
    let budget = gateway
        .quotas
        .budget(caller.account, tier.tokens_per_day, now);
    let rate = gateway
        .quotas
        .admit(caller.account, tier.requests_per_minute)
        .map_err(|e| {
            let spent = RateState {
                limit: tier.requests_per_minute,
                remaining: 0,
            };
            (quota_error(e), Some(spent), Some(budget))
        })?;
    let refuse = |e: ApiError| (e, Some(rate), Some(budget));

    let inspected = inspect(endpoint, &body).map_err(refuse)?;
    let snapshot = gateway.chain.snapshot();
    let wanted = match endpoint {
        Endpoint::Embeddings => ModelCategory::Embedding,
        _ => ModelCategory::Text,
    };
    let offer = snapshot
        .offers
        .get(&inspected.model)
        .filter(|offer| offer.category == wanted)
        .ok_or_else(|| {
            let kind = match wanted {
                ModelCategory::Embedding => "embedding",
                ModelCategory::Text => "text",
            };
            refuse(ApiError {
                message: format!(
                    "The model `{}` is not a {kind} model that a registered provider serves now \
                     (see GET /v1/models)",
                    inspected.model
                ),
                ..ApiError::model_not_found(&inspected.model, kind)
            })
        })?
        .clone();
    let count = {
        let counters = gateway.counters.clone();
        let (model, prompt) = (inspected.model.clone(), inspected.prompt.clone());
        match inspected.prompt.bytes() > COUNT_INLINE_BYTES {
            false => counters.count(&model, &prompt),
            true => tokio::task::spawn_blocking(move || counters.count(&model, &prompt))
                .await
                .map_err(|e| {
                    refuse(ApiError::server(format!("counting the prompt failed: {e}")))
                })?,
        }
    }
    .map_err(refuse)?;
    let prompt_tokens = count.tokens() as u64;
    // A generating request's prompt and answer share the context (an embedding input has a
    // context of its own, each).
    let context = match endpoint {
        Endpoint::Embeddings => 0,
        _ => offer.context_length,
    };
    let too_long = || {
        refuse(
            ApiError::invalid(
                format!(
                    "the prompt is {prompt_tokens} tokens; `{}` takes {context} tokens of context, \
                     answer included",
                    inspected.model
                ),
                Some("messages"),
            )
            .with_code("context_length_exceeded"),
        )
    };
    let room = match context {
        0 => u64::MAX,
        c => c.saturating_sub(prompt_tokens),
    };
    let generates = endpoint != Endpoint::Embeddings;
    if matches!(count, Count::Exact(_)) && generates && room == 0 {
        return Err(too_long());
    }

    // The most it may generate: as asked, or (a chat that does not say) what the context and
    // the day's budget leave, so an omitted max_tokens never meets a surprise 402.
    let (max_tokens, rewrite) = match inspected.max_tokens {
        Some(n) => (n as u64, false),
        None => (room.min(budget.left().saturating_sub(prompt_tokens)), true),
    };
    if rewrite && max_tokens == 0 {
        let error = QuotaError::Budget {
            limit: budget.limit,
            left: budget.left(),
            asked: prompt_tokens.saturating_add(1),
        };
        return Err(refuse(quota_error(error)));
    }
    // Prompt and answer never pass the context, whatever max_tokens says.
    let mut cost = prompt_tokens.saturating_add(max_tokens);
    if context > 0 {
        cost = cost.min(context.max(prompt_tokens));
    }
    let reservation = gateway
        .quotas
        .reserve(caller.account, tier.tokens_per_day, cost, now)
        .map_err(|e| refuse(quota_error(e)))?;
    let body =
        outbound_body(body, inspected.stream, rewrite.then_some(max_tokens)).map_err(refuse)?;
    let budget = gateway
        .quotas
        .budget(caller.account, tier.tokens_per_day, now);
    Ok(Metered {
        endpoint,
        body,
        inspected,
        prompt_tokens,
        reservation,
        rate,
        budget,
    })
}

/// The body sent to the provider: as the client sent it, with `max_tokens` set when the gateway
/// chose it, and a stream asked to end with its usage.
fn outbound_body(body: Bytes, stream: bool, max_tokens: Option<u64>) -> Result<Bytes, ApiError> {
    if !stream && max_tokens.is_none() {
        return Ok(body);
    }
    let mut value: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(format!("cannot read the body: {e}"), None))?;
    if let Some(object) = value.as_object_mut() {
        if let Some(max) = max_tokens {
            object.insert("max_tokens".into(), json!(max));
        }
        if stream {
            object.insert("stream_options".into(), json!({ "include_usage": true }));
        }
    }
    serde_json::to_vec(&value)
        .map(Bytes::from)
        .map_err(|e| ApiError::server(e.to_string()))
}

/// The last step: route to a provider of the model and proxy its answer.
async fn forward(
    State(gateway): State<Arc<Gateway>>,
    axum::Extension(ticket): axum::Extension<Ticket>,
) -> Response {
    let Some(metered) = ticket.0.lock().take() else {
        return ApiError::server("the request was not metered").into_response();
    };
    let snapshot = gateway.chain.snapshot();
    let model = &metered.inspected.model;
    let mut providers = snapshot
        .offers
        .get(model)
        .map(|offer| offer.providers.clone())
        .unwrap_or_default();
    // No provider holds the whole model: its shards run as a pipeline here.
    if providers.is_empty() {
        providers.extend(gateway.pipelines.upstream(model));
    }
    gateway
        .forwarder
        .forward(Outbound {
            endpoint: metered.endpoint,
            body: metered.body,
            stream: metered.inspected.stream,
            providers,
            prompt_tokens: metered.prompt_tokens,
            reservation: metered.reservation,
            epoch: snapshot.epoch,
        })
        .await
}

fn model_card(offer: &crate::chain::Offer) -> Value {
    json!({
        "id": offer.id,
        "object": "model",
        "created": 0,
        "owned_by": "aicoin",
        "context_length": offer.context_length,
        "type": match offer.category {
            ModelCategory::Text => "text",
            ModelCategory::Embedding => "embedding",
        },
        "providers": offer.providers.len(),
        "shards": offer.shards.len(),
    })
}

async fn models(State(gateway): State<Arc<Gateway>>) -> Json<Value> {
    let snapshot = gateway.chain.snapshot();
    let data: Vec<Value> = snapshot.offers.values().map(model_card).collect();
    Json(json!({ "object": "list", "data": data }))
}

async fn model(
    State(gateway): State<Arc<Gateway>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let snapshot = gateway.chain.snapshot();
    snapshot
        .offers
        .get(&id)
        .map(|offer| Json(model_card(offer)))
        .ok_or_else(|| ApiError::model_not_found(&id, "served"))
}

fn aic(wei: alloy_primitives::U256) -> String {
    let (whole, fraction) = (wei / AIC, wei % AIC);
    let fraction = format!("{fraction:018}");
    match fraction.trim_end_matches('0') {
        "" => whole.to_string(),
        digits => format!("{whole}.{digits}"),
    }
}

async fn pricing(State(gateway): State<Arc<Gateway>>) -> Json<Value> {
    let snapshot = gateway.chain.snapshot();
    let tiers: Vec<Value> = snapshot
        .tiers
        .iter()
        .map(|t| {
            json!({
                "tier": t.id,
                "name": t.name,
                "price_wei": t.price.to_string(),
                "price_aic": aic(t.price),
                "requests_per_minute": t.requests_per_minute,
                "tokens_per_day": t.tokens_per_day,
                "period_blocks": t.period_blocks,
                "period_seconds": (t.period_blocks as f64 * gateway.block_seconds).round() as u64,
            })
        })
        .collect();
    Json(json!({
        "object": "pricing",
        "chain_id": gateway.chain_id,
        "contract": API_ACCESS_ADDRESS,
        "buy": "IApiAccess.buy(tier), payable with exactly the tier's price",
        "tiers": tiers,
    }))
}

async fn account(
    State(gateway): State<Arc<Gateway>>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Json<Value> {
    let now = unix_now();
    let s = caller.subscription;
    let tier = tier_of(&gateway, s.tier).filter(|_| s.active);
    let limit = tier.as_ref().map_or(0, |t| t.tokens_per_day);
    let budget = gateway.quotas.budget(caller.account, limit, now);
    let seconds_left = s.expires_at.saturating_sub(s.head) as f64 * gateway.block_seconds;
    Json(json!({
        "object": "account",
        "account": caller.account,
        "tier": s.tier,
        "tier_name": tier.as_ref().map(|t| t.name),
        "active": s.active,
        "expires_at_block": s.expires_at,
        "expires_in_seconds": if s.active { seconds_left.round() as u64 } else { 0 },
        "key_generation": s.key_generation,
        "quota": {
            "requests_per_minute": tier.as_ref().map_or(0, |t| t.requests_per_minute),
            "tokens_per_day": limit,
            "tokens_used_today": budget.used,
            "tokens_reserved": budget.reserved,
            "tokens_left_today": budget.left(),
            "resets_at": budget.resets_at,
        },
    }))
}

/// `POST /v1/keys`: the typed-data message's fields and the wallet's signature of it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct KeyRequest {
    account: Address,
    expires: u64,
    generation: u64,
    #[serde(default)]
    chain_id: Option<u64>,
    /// 65 bytes in hex, as `eth_signTypedData_v4` returns it.
    signature: String,
}

async fn create_key(State(gateway): State<Arc<Gateway>>, body: Bytes) -> Response {
    let request: KeyRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return ApiError::invalid(
                format!(
                    "expected {{\"account\", \"expires\", \"generation\", \"chainId\", \
                     \"signature\"}}: {e}"
                ),
                None,
            )
            .into_response();
        }
    };
    let key = ApiKey {
        account: request.account,
        expires: request.expires,
        generation: request.generation,
        chainId: request.chain_id.unwrap_or(gateway.chain_id),
    };
    let Ok(signature) = request.signature.parse::<Signature>() else {
        return ApiError::invalid(
            "`signature` is not a 65-byte hex signature",
            Some("signature"),
        )
        .into_response();
    };
    let encoded = keys::encode(&key, &signature);
    let checked = ApiKey::decode(&encoded).and_then(|decoded| {
        let generation = gateway
            .chain
            .subscription(decoded.account)
            .map_err(|e| KeyError::Signing(e.to_string()))?
            .key_generation;
        decoded.check(gateway.chain_id, unix_now(), generation)?;
        Ok(decoded)
    });
    match checked {
        Ok(_) => (
            StatusCode::CREATED,
            Json(json!({
                "object": "api_key",
                "key": encoded,
                "account": key.account,
                "expires": key.expires,
                "generation": key.generation,
            })),
        )
            .into_response(),
        Err(e) => ApiError::unauthorized(e.to_string()).into_response(),
    }
}
