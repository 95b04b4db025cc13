//! The actix-web server. Handlers read [`Shared`] under a read lock and never message an actor.

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::dev::{Server, Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use chrono::{DateTime, Utc};
use neolight_actors::providers::cascade::{Cascade, Mode};
use neolight_actors::providers::refresher::store_quotes;
use neolight_actors::providers::ProviderId;
use neolight_actors::quote_service::freshness;
use neolight_actors::shared::{AgentState, OrderEvent, Shared};
use neolight_messages::{MarketSource, OrderRequest, PortfolioView, Quote, Symbol, TradingState};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde_json::{json, Value};

/// Handler state besides the shared snapshots.
pub struct HttpState {
    pub shared: Arc<Shared>,
    /// The live provider cascade; `None` for sim and replay.
    pub cascade: Option<Arc<Cascade>>,
    pub max_age: std::time::Duration,
    pub stale_cap: std::time::Duration,
    /// `NEOLIGHT_API_KEY`; without it, operator routes return 403.
    pub api_key: Option<String>,
    pub require_auth: bool,
}

/// Compares without stopping at the first differing byte, so the time taken does not reveal
/// how much of a guessed key was right (it does reveal the length).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks `X-API-Key` against the configured key.
fn authorized(state: &HttpState, req: &HttpRequest) -> Result<(), HttpResponse> {
    let Some(expected) = &state.api_key else {
        return Err(error(StatusCode::FORBIDDEN, "operator routes are disabled: set NEOLIGHT_API_KEY to enable them".to_string()));
    };
    let given = req.headers().get("x-api-key").map(|v| v.as_bytes()).unwrap_or_default();
    if constant_time_eq(given, expected.as_bytes()) {
        Ok(())
    } else {
        Err(error(StatusCode::UNAUTHORIZED, "missing or wrong X-API-Key header".to_string()))
    }
}

type State = web::Data<HttpState>;

/// Starts the server on a bound listener; returns it with the address it listens on.
pub fn start(state: HttpState, listener: std::net::TcpListener) -> std::io::Result<(Server, SocketAddr)> {
    let addr = listener.local_addr()?;
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/health", web::get().to(health))
            .route("/agents", web::get().to(agents))
            .route("/agents/{name}", web::get().to(agent))
            .route("/portfolio", web::get().to(portfolio))
            .route("/brain", web::get().to(brain))
            .route("/quotes", web::get().to(quotes))
            .route("/quotes/{symbol}", web::get().to(quote))
            .route("/orders", web::get().to(orders))
            .route("/providers", web::get().to(providers))
            .route("/providers/{name}/{action}", web::post().to(provider_control))
            .default_service(web::to(not_found))
            .wrap_fn(|req, srv| {
                let state = req.app_data::<State>().cloned();
                let gated = state.as_ref().is_some_and(|s| s.require_auth) && req.path() != "/health";
                let denied = if gated { state.as_ref().and_then(|s| authorized(s, req.request()).err()) } else { None };
                let response: std::pin::Pin<Box<dyn std::future::Future<Output = _>>> = match denied {
                    Some(response) => {
                        let (request, _) = req.into_parts();
                        Box::pin(async move { Ok(ServiceResponse::new(request, response).map_into_right_body()) })
                    }
                    None => {
                        let fut = srv.call(req);
                        Box::pin(async move { fut.await.map(|r| r.map_into_left_body()) })
                    }
                };
                response
            })
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(2)
    .listen(listener)?;
    Ok((server.run(), addr))
}

fn number(value: Decimal) -> Value {
    json!(value.to_f64())
}

fn error(status: StatusCode, message: String) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": message }))
}

async fn not_found(req: actix_web::HttpRequest) -> HttpResponse {
    error(StatusCode::NOT_FOUND, format!("no route for {} {}", req.method(), req.path()))
}

/// Returns the mesh clock: bar time in replay, wall time otherwise.
fn mesh_now(shared: &Shared) -> DateTime<Utc> {
    let status = shared.status.read().expect("status lock poisoned");
    match (status.market, status.mesh_time) {
        (MarketSource::Replay, Some(time)) => time,
        _ => Utc::now(),
    }
}

async fn health(state: State) -> HttpResponse {
    let shared = &state.shared;
    let agents = shared.agents.read().expect("agents lock poisoned");
    let total = agents.len();
    let running = agents.values().filter(|a| a.state == AgentState::Running).count();
    let failing: Vec<&str> = agents
        .values()
        .filter(|a| a.required && matches!(a.state, AgentState::Failed | AgentState::Stalled))
        .map(|a| a.name)
        .collect();

    let status = shared.status.read().expect("status lock poisoned");
    let trading_state = shared.portfolio.read().expect("portfolio lock poisoned").as_ref().map(|p| p.trading_state);
    let mut reasons: Vec<String> = failing.iter().map(|name| format!("required agent {name} is not running")).collect();
    if let Some(reason) = &status.halt_reason {
        reasons.push(format!("trading halted: {reason}"));
    }
    let offline = state.cascade.as_ref().is_some_and(|c| c.is_offline());
    if offline {
        reasons.push("offline: no quote provider can be reached; serving cached quotes".to_string());
    }

    let (code, label) = if !failing.is_empty() {
        (StatusCode::SERVICE_UNAVAILABLE, "failing")
    } else if offline || status.halt_reason.is_some() || trading_state == Some(TradingState::Halted) || running < total {
        (StatusCode::OK, "degraded")
    } else {
        (StatusCode::OK, "ok")
    };

    HttpResponse::build(code).json(json!({
        "status": label,
        "mode": "paper",
        "market": status.market.as_str(),
        "offline": offline,
        "agents": { "running": running, "total": total, "failing": failing },
        "reasons": reasons,
        "trading_state": trading_state.map(|s| s.as_str()),
        "mesh_time": status.mesh_time,
        "steps": status.steps_done,
        "finished": status.finished,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": shared.started.elapsed().as_secs(),
    }))
}

async fn agents(state: State) -> HttpResponse {
    let agents = state.shared.agents.read().expect("agents lock poisoned");
    let mut list: Vec<_> = agents.values().cloned().collect();
    list.sort_by_key(|a| a.priority);
    HttpResponse::Ok().json(list)
}

async fn agent(state: State, name: web::Path<String>) -> HttpResponse {
    let agents = state.shared.agents.read().expect("agents lock poisoned");
    match agents.get(name.as_str()) {
        Some(info) => HttpResponse::Ok().json(info),
        None => {
            let known: Vec<&str> = agents.keys().copied().collect();
            error(StatusCode::NOT_FOUND, format!("no agent named {:?}; agents: {}", name.as_str(), known.join(", ")))
        }
    }
}

fn portfolio_json(view: &PortfolioView, now: DateTime<Utc>) -> Value {
    let positions: Vec<Value> = view
        .positions
        .iter()
        .map(|p| {
            json!({
                "symbol": p.symbol,
                "qty": number(p.qty),
                "avg_price": number(p.avg_price),
                "market_price": number(p.market_price),
                "price_time": p.price_time,
                "price_age_ms": (now - p.price_time).num_milliseconds().max(0),
                "unrealized_pnl": number(p.unrealized_pnl),
            })
        })
        .collect();
    json!({
        "as_of": view.time,
        "cash": number(view.cash),
        "equity": number(view.equity),
        "positions_value": number(view.positions_value),
        "realized_pnl": number(view.realized_pnl),
        "unrealized_pnl": number(view.unrealized_pnl),
        "fees": number(view.fees),
        "drawdown": view.drawdown,
        "trading_state": view.trading_state.as_str(),
        "positions": positions,
    })
}

async fn portfolio(state: State) -> HttpResponse {
    let now = mesh_now(&state.shared);
    match state.shared.portfolio.read().expect("portfolio lock poisoned").as_ref() {
        Some(view) => HttpResponse::Ok().json(portfolio_json(view, now)),
        None => error(StatusCode::SERVICE_UNAVAILABLE, "no step has finished yet; retry in a moment".to_string()),
    }
}

async fn brain(state: State) -> HttpResponse {
    let now = mesh_now(&state.shared);
    let guard = state.shared.brain.read().expect("brain lock poisoned");
    let Some(brain) = guard.as_ref() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the brain has not run yet; retry in a moment".to_string());
    };
    let age_ms = (now - brain.inputs.observed_at).num_milliseconds().max(0);
    let input = |value: Value| json!({ "value": value, "observed_at": brain.inputs.observed_at, "age_ms": age_ms });
    HttpResponse::Ok().json(json!({
        "risk_scaler": brain.risk_scaler,
        "confidence": brain.confidence,
        "updated_at": brain.updated_at,
        "age_ms": (now - brain.updated_at).num_milliseconds().max(0),
        "inputs": {
            "drawdown": input(json!(brain.inputs.drawdown)),
            "realized_volatility": input(json!(brain.inputs.realized_volatility)),
            "hit_rate": input(json!(brain.inputs.hit_rate)),
            "closed_trades": input(json!(brain.inputs.closed_trades)),
        },
    }))
}

fn quote_json(quote: &Quote, now: DateTime<Utc>, state: &HttpState) -> Value {
    let fresh = freshness(now, quote.fetched_at, state.max_age, state.stale_cap);
    let expired = fresh == neolight_messages::Freshness::Expired;
    json!({
        "symbol": quote.symbol,
        "price": if expired { Value::Null } else { number(quote.price) },
        "bid": quote.bid.map(number),
        "ask": quote.ask.map(number),
        "source": quote.source,
        "exchange_time": quote.exchange_time,
        "age_ms": (now - quote.fetched_at).num_milliseconds().max(0),
        "freshness": fresh.as_str(),
    })
}

async fn quotes(state: State) -> HttpResponse {
    let now = mesh_now(&state.shared);
    let quotes = state.shared.quotes.read().expect("quotes lock poisoned");
    let list: Vec<Value> = quotes.values().map(|q| quote_json(q, now, &state)).collect();
    HttpResponse::Ok().json(list)
}

async fn quote(state: State, symbol: web::Path<String>) -> HttpResponse {
    let symbol = Symbol::new(symbol.trim());
    if symbol.as_str().is_empty() || symbol.as_str().len() > 64 {
        return error(StatusCode::BAD_REQUEST, format!("{:?} is not a symbol", symbol.as_str()));
    }
    // Live: a quote that is not fresh is refreshed when a provider can be called now. Offline,
    // the cached quote is served at once and the refresher alone probes the providers.
    if let Some(cascade) = state.cascade.as_ref().filter(|c| !c.is_offline()) {
        let now = Utc::now();
        let fresh = state.shared.quotes.read().expect("quotes lock poisoned").get(&symbol).is_some_and(|q| {
            freshness(now, q.fetched_at, state.max_age, state.stale_cap) == neolight_messages::Freshness::Fresh
        });
        if !fresh {
            let report = cascade.fetch(&symbol, Mode::Caller).await;
            store_quotes(&state.shared, std::slice::from_ref(&report));
        }
    }
    let now = mesh_now(&state.shared);
    let quotes = state.shared.quotes.read().expect("quotes lock poisoned");
    match quotes.get(&symbol) {
        Some(q) => HttpResponse::Ok().json(quote_json(q, now, &state)),
        None => error(StatusCode::NOT_FOUND, format!("no quote for {} yet", symbol.as_str())),
    }
}

fn order_json(order: &OrderRequest) -> Value {
    json!({
        "client_order_id": order.client_order_id,
        "strategy": order.strategy,
        "symbol": order.symbol,
        "side": order.side.as_str(),
        "qty": number(order.qty),
        "signal_time": order.signal_time,
        "reference_price": number(order.reference_price),
    })
}

fn event_json(event: &OrderEvent) -> Value {
    match event {
        OrderEvent::Accepted { time, order } => json!({ "event": "accepted", "time": time, "order": order_json(order) }),
        OrderEvent::Rejected { time, order, reason } => {
            json!({ "event": "rejected", "time": time, "order": order_json(order), "reason": reason })
        }
        OrderEvent::Filled { fill } => json!({
            "event": "filled",
            "time": fill.timestamp,
            "client_order_id": fill.client_order_id,
            "symbol": fill.symbol,
            "side": fill.side.as_str(),
            "qty": number(fill.qty),
            "price": number(fill.price),
            "fee": number(fill.fee),
        }),
        OrderEvent::Cancelled { time, client_order_id, reason } => {
            json!({ "event": "cancelled", "time": time, "client_order_id": client_order_id, "reason": reason })
        }
    }
}

/// Recent order events, newest first.
async fn orders(state: State) -> HttpResponse {
    let orders = state.shared.orders.read().expect("orders lock poisoned");
    let list: Vec<Value> = orders.iter().rev().map(event_json).collect();
    HttpResponse::Ok().json(json!({ "events": list }))
}

/// Per-provider breaker state, counters and rate limits; empty outside the live market.
async fn providers(state: State) -> HttpResponse {
    let offline = state.cascade.as_ref().is_some_and(|c| c.is_offline());
    let list = state.cascade.as_ref().map(|c| c.snapshot()).unwrap_or_default();
    HttpResponse::Ok().json(json!({ "offline": offline, "providers": list }))
}

/// `POST /providers/{name}/isolate` and `/release`, for the operator.
async fn provider_control(state: State, req: HttpRequest, path: web::Path<(String, String)>) -> HttpResponse {
    if let Err(response) = authorized(&state, &req) {
        return response;
    }
    let (name, action) = path.into_inner();
    let Some(provider) = ProviderId::parse(&name) else {
        let known: Vec<&str> = ProviderId::ALL.iter().map(|p| p.as_str()).collect();
        return error(StatusCode::NOT_FOUND, format!("no provider named {name:?}; providers: {}", known.join(", ")));
    };
    let Some(cascade) = &state.cascade else {
        return error(StatusCode::CONFLICT, "providers are only used with --market live".to_string());
    };
    let done = match action.as_str() {
        "isolate" => cascade.isolate(provider),
        "release" => cascade.release(provider),
        other => return error(StatusCode::NOT_FOUND, format!("no provider action {other:?}; use isolate or release")),
    };
    if !done {
        return error(StatusCode::NOT_FOUND, format!("provider {name} is not configured"));
    }
    let view = cascade.snapshot().into_iter().find(|v| v.name == provider.as_str());
    HttpResponse::Ok().json(view)
}
