//! Yonyou BIP (用友 BIP / YonSuite) through its OpenAPI.
//!
//! **Addresses.** The tenant's gateway and token addresses come from the data-center
//! lookup (`{base_url}/open-auth/dataCenter/getGatewayAddress?tenantId=…`), kept a day in
//! the key-value store; a config may name them instead (`gateway_url`, `token_url`).
//!
//! **Token.** A self-built app's token (`/open-auth/selfAppAuth/base/v1/getAccessToken`
//! with `appKey`, `timestamp` in milliseconds and `signature`: the parameters but the
//! signature sorted by name, each name followed by its value, signed with HMAC-SHA256
//! under the app secret, Base64, URL-encoded), kept in the key-value store until five
//! minutes before its two hours are up. An API answering `310036` (非法token) — HTTP 200,
//! as Yonyou does — gets a new token and the request is made once more.
//!
//! **Reading.** `POST /yonbip/sd/voucherorder/list` with `isSum: false` (one record per
//! order line), filtered on `pubts` (the record's last-change stamp) from the watermark,
//! ordered by it, page by page (`pageIndex` from 1 to `pageCount`).
//!
//! **Poll**: `erp.order_changed`, `erp.delivery_overdue`, `erp.delivery_completed`.
//! **Operations**: `read_order`, `open_orders`.

#![cfg_attr(
    not(target_arch = "wasm32"),
    allow(
        dead_code,
        reason = "the entry points are exported only in the wasm32 component; native builds run the unit tests"
    )
)]

use base64::Engine as _;
use erp_core::{Customer, LineStatus, OrderLine, PollState, Watch, date_of, number, text};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use trellis_connector_sdk::{
    Call, Connector, Context, Error, JsonSchema, Manifest, Operation, Output, Polled, Value, http,
    json, kv, now_ms, secrets,
};

const SYSTEM: &str = "yonyou";
const TOKEN_KEY: &str = "token";
const GATEWAY_KEY: &str = "gateway";
const TOKEN_MARGIN_MS: u64 = 5 * 60 * 1000;
const GATEWAY_TTL_MS: u64 = 24 * 3600 * 1000;
const LIST: &str = "/yonbip/sd/voucherorder/list";
/// Yonyou's answer to a token it no longer takes.
const BAD_TOKEN: &str = "310036";
const MAX_PAGES: u32 = 500;
/// The end of the `pubts` range read (Yonyou's filter takes a closed range).
const FAR_FUTURE: &str = "2099-12-31 23:59:59";

fn open_platform() -> String {
    "https://apigateway.yonyoucloud.com".into()
}

fn page() -> u32 {
    100
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
struct Site {
    /// The open platform's address, where the tenant's gateway is looked up.
    #[serde(default = "open_platform")]
    #[schemars(extend("x-trellis" = { "label": {"zh": "开放平台地址", "en": "Open platform address"} }))]
    base_url: String,
    /// The tenant id (租户 ID).
    #[serde(default)]
    #[schemars(extend("x-trellis" = { "label": {"zh": "租户 ID", "en": "Tenant id"} }))]
    tenant_id: Option<String>,
    /// The tenant's API gateway, when it is not looked up.
    #[serde(default)]
    gateway_url: Option<String>,
    /// The tenant's token address, when it is not looked up.
    #[serde(default)]
    token_url: Option<String>,
    /// Records per page.
    #[serde(default = "page")]
    #[schemars(range(min = 1, max = 500))]
    page_size: u32,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct PollConfig {
    #[serde(flatten)]
    site: Site,
    #[serde(flatten)]
    watch: Watch,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct OrderInput {
    /// The sales order's code, e.g. `UO-20220513000001`.
    order: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct CustomerInput {
    /// The customer's name as Yonyou shows it (`agentId_name`).
    customer: String,
}

#[derive(Debug, Serialize, JsonSchema)]
struct LinesOutput {
    #[schemars(with = "Vec<Value>")]
    lines: Vec<OrderLine>,
}

/// Where the tenant's APIs are.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Gateway {
    #[serde(rename = "gatewayUrl")]
    gateway_url: String,
    #[serde(rename = "tokenUrl")]
    token_url: String,
}

struct Yonyou;

impl Connector for Yonyou {
    fn manifest() -> Manifest {
        Manifest::new("erp-yonyou", env!("CARGO_PKG_VERSION"))
            .display("用友 BIP", "Yonyou BIP")
            .description(
                "Reads sales orders from Yonyou BIP (YonSuite) through its OpenAPI; polls \
                 order changes, overdue and completed deliveries.",
            )
            .host("*")
            .secret("app_key")
            .secret("app_secret")
            .kv()
            .poll()
            .operation(Operation::new::<Site, OrderInput, LinesOutput>(
                "read_order",
                "读取销售订单",
                "Read a sales order",
            ))
            .operation(Operation::new::<Site, CustomerInput, LinesOutput>(
                "open_orders",
                "客户未交订单",
                "A customer's open orders",
            ))
    }

    fn invoke(call: Call) -> Result<Output, Error> {
        match call.operation() {
            "read_order" => call.handle(read_order),
            "open_orders" => call.handle(open_orders),
            other => Err(Error::unknown_operation(other)),
        }
    }

    fn poll(config: Value, cursor: Option<String>, _: Context) -> Result<Polled, Error> {
        let config: PollConfig = serde_json::from_value(config)
            .map_err(|e| Error::InvalidInput(format!("poll config: {e}")))?;
        let mut state = PollState::from_cursor(cursor.as_deref())?;
        let today = erp_core::today(now_ms(), config.watch.utc_offset_hours);
        let since = match &state.since {
            Some(s) => s.clone(),
            None => format!("{} 00:00:00", config.watch.first_read(today)?),
        };
        let lines = list(
            &config.site,
            json!([{ "field": "pubts", "op": "between", "value1": since, "value2": FAR_FUTURE }]),
        )?;
        let events = state.advance(SYSTEM, lines, today)?;
        Ok(Polled {
            events,
            cursor: Some(state.to_cursor()),
        })
    }
}

fn read_order(site: Site, input: OrderInput, _: &Context) -> Result<LinesOutput, Error> {
    let lines = list(
        &site,
        json!([{ "field": "code", "op": "eq", "value1": input.order }]),
    )?;
    if lines.is_empty() {
        return Err(Error::NotFound(format!(
            "no sales order {:?} in Yonyou BIP",
            input.order
        )));
    }
    Ok(LinesOutput { lines })
}

fn open_orders(site: Site, input: CustomerInput, _: &Context) -> Result<LinesOutput, Error> {
    let lines = list(
        &site,
        json!([{ "field": "agentId.name", "op": "eq", "value1": input.customer }]),
    )?;
    Ok(LinesOutput {
        lines: lines.into_iter().filter(|l| l.qty_open > 0.0).collect(),
    })
}

/// Every order line the filter selects, page by page.
fn list(site: &Site, filter: Value) -> Result<Vec<OrderLine>, Error> {
    let mut out = Vec::new();
    let mut index = 1;
    while index <= MAX_PAGES {
        let body = json!({
            "pageIndex": index, "pageSize": site.page_size, "isSum": false,
            "simpleVOs": filter,
            "queryOrders": [ { "field": "pubts", "order": "asc" }, { "field": "id", "order": "asc" } ],
        });
        let data = call(site, LIST, &body)?;
        out.extend(
            data["recordList"]
                .as_array()
                .into_iter()
                .flatten()
                .map(line_of),
        );
        let pages = data["pageCount"].as_u64().unwrap_or(1);
        if u64::from(index) >= pages {
            return Ok(out);
        }
        index += 1;
    }
    Err(Error::Internal(format!(
        "more than {MAX_PAGES} pages of sales orders; narrow the read"
    )))
}

/// One `voucherorder/list` record (an order line, `isSum: false`) as a line.
fn line_of(r: &Value) -> OrderLine {
    let qty = number(&r["qty"]);
    let shipped = match &r["totalOutStockQuantity"] {
        Value::Null => number(&r["sendQty"]),
        v => number(v),
    };
    let open = (qty - shipped).max(0.0);
    let next = text(&r["nextStatus"]);
    let status = if next == "OPPOSE" {
        LineStatus::Closed
    } else if open <= 0.0 && shipped > 0.0 {
        LineStatus::Completed
    } else if next == "ENDORDER" {
        LineStatus::Closed
    } else {
        LineStatus::Open
    };
    let day = |k: &str| date_of(&text(&r[k])).map(|d| d.to_string());
    let line = match text(&r["orderDetailId"]) {
        id if !id.is_empty() => id,
        _ => text(&r["lineno"]),
    };
    let name = text(&r["agentId_name"]);
    OrderLine {
        customer: Customer {
            id: text(&r["agentId"]),
            name: if name.is_empty() {
                text(&r["agentId"])
            } else {
                name
            },
        },
        order: text(&r["code"]),
        line,
        product: text(&r["productCode"]),
        product_name: Some(text(&r["productName"])).filter(|s| !s.is_empty()),
        qty_ordered: qty,
        qty_confirmed: qty,
        qty_shipped: shipped,
        qty_open: open,
        promised_date: day("hopeReceiveDate"),
        confirmed_date: day("deliveryDate")
            .or_else(|| day("sendDate"))
            .or_else(|| day("hopeReceiveDate")),
        status,
        modified: text(&r["pubts"]),
    }
}

/// Calls an API with the token, getting a new one once when Yonyou refuses it; gives
/// `data`.
fn call(site: &Site, path: &str, body: &Value) -> Result<Value, Error> {
    let gateway = gateway(site)?;
    let mut token = token(&gateway)?;
    let mut renewed = false;
    loop {
        let url = format!(
            "{}{path}?access_token={}",
            gateway.gateway_url.trim_end_matches('/'),
            form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>()
        );
        let r = http::Request::post(url).json(body)?.send()?;
        let text_body = r.text();
        let v: Value = serde_json::from_str(&text_body).unwrap_or(Value::Null);
        let code = text(&v["code"]);
        let refused = code == BAD_TOKEN || text_body.trim() == "非法token";
        if refused && !renewed {
            token = token_fresh(&gateway)?;
            renewed = true;
            continue;
        }
        if code == "200" {
            return Ok(v["data"].clone());
        }
        let message = v["message"].as_str().unwrap_or(text_body.as_str());
        return Err(if refused {
            Error::AuthFailed(format!("Yonyou refused a new token: {message}"))
        } else if matches!(code.as_str(), "310032" | "310039" | "310042" | "310046") {
            Error::RateLimited {
                retry_after_ms: Some(60_000),
                message: format!("Yonyou: {message}"),
            }
        } else {
            r.error_for_status().err().unwrap_or(Error::Remote {
                code: code.parse().unwrap_or(0),
                message: format!("Yonyou {code}: {message}"),
                retryable: code == "999",
            })
        });
    }
}

/// The tenant's gateway and token addresses.
fn gateway(site: &Site) -> Result<Gateway, Error> {
    if let (Some(g), Some(t)) = (&site.gateway_url, &site.token_url) {
        return Ok(Gateway {
            gateway_url: g.clone(),
            token_url: t.clone(),
        });
    }
    if let Some(kept) = kv::get(GATEWAY_KEY)?
        && let Ok(g) = serde_json::from_slice(&kept)
    {
        return Ok(g);
    }
    let tenant = site.tenant_id.as_deref().ok_or_else(|| {
        Error::InvalidInput("name the tenant_id (or gateway_url and token_url)".into())
    })?;
    let v = http::Request::get(format!(
        "{}/open-auth/dataCenter/getGatewayAddress?tenantId={}",
        site.base_url.trim_end_matches('/'),
        form_urlencoded::byte_serialize(tenant.as_bytes()).collect::<String>()
    ))
    .send()?
    .error_for_status()?
    .json_value()?;
    if text(&v["code"]) != "00000" {
        return Err(Error::InvalidInput(format!(
            "Yonyou found no gateway for tenant {tenant:?}: {}",
            v["message"].as_str().unwrap_or("no message")
        )));
    }
    let g: Gateway = serde_json::from_value(v["data"].clone()).map_err(|e| Error::Remote {
        code: 200,
        message: format!("the gateway lookup did not answer addresses: {e}"),
        retryable: false,
    })?;
    kv::set(
        GATEWAY_KEY,
        serde_json::to_string(&g).unwrap_or_default().as_bytes(),
        Some(GATEWAY_TTL_MS),
    )?;
    Ok(g)
}

/// The kept token, or a new one.
fn token(gateway: &Gateway) -> Result<String, Error> {
    match kv::get(TOKEN_KEY)? {
        Some(t) => Ok(String::from_utf8_lossy(&t).into_owned()),
        None => token_fresh(gateway),
    }
}

/// The signature of a token request: `URLEncode(Base64(HmacSHA256(appKey{k}timestamp{t})))`.
fn signature(app_key: &str, timestamp: u64, app_secret: &str) -> String {
    // The parameters but the signature, sorted by name: appKey, timestamp.
    let text = format!("appKey{app_key}timestamp{timestamp}");
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(text.as_bytes());
    let b64 = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    form_urlencoded::byte_serialize(b64.as_bytes()).collect()
}

/// Gets and keeps a new token.
fn token_fresh(gateway: &Gateway) -> Result<String, Error> {
    let (key, secret) = (secrets::get("app_key")?, secrets::get("app_secret")?);
    let timestamp = now_ms();
    let v = http::Request::get(format!(
        "{}/open-auth/selfAppAuth/base/v1/getAccessToken?appKey={}&timestamp={timestamp}&signature={}",
        gateway.token_url.trim_end_matches('/'),
        form_urlencoded::byte_serialize(key.as_bytes()).collect::<String>(),
        signature(&key, timestamp, &secret)
    ))
    .header("content-type", "application/json")
    .send()?
    .error_for_status()?
    .json_value()?;
    if text(&v["code"]) != "00000" {
        return Err(Error::AuthFailed(format!(
            "Yonyou refused the app's token request ({}): {}",
            text(&v["code"]),
            v["message"].as_str().unwrap_or("no message")
        )));
    }
    let token = text(&v["data"]["access_token"]);
    let expire_ms = v["data"]["expire"].as_u64().unwrap_or(7200) * 1000;
    kv::set(
        TOKEN_KEY,
        token.as_bytes(),
        Some(expire_ms.saturating_sub(TOKEN_MARGIN_MS).max(1000)),
    )?;
    Ok(token)
}

// Exported only in the component: natively (where the unit tests run) the export names
// (`poll`, `invoke`…) would shadow the C library's.
#[cfg(target_arch = "wasm32")]
trellis_connector_sdk::export!(Yonyou);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_base64_url_encoded() {
        // Yonyou's documented example string, signed with a known secret.
        let s = signature(
            "41832a3d2df94989b500da6a22268747",
            1_568_098_531_823,
            "secret",
        );
        let decoded: String = form_urlencoded::parse(format!("s={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(decoded)
            .unwrap_or_default();
        let mut mac = Hmac::<Sha256>::new_from_slice(b"secret").unwrap_or_else(|_| unreachable!());
        mac.update(b"appKey41832a3d2df94989b500da6a22268747timestamp1568098531823");
        assert_eq!(raw, mac.finalize().into_bytes().to_vec());
        assert!(
            !s.contains('+') && !s.contains('/') && !s.contains('='),
            "{s}"
        );
    }

    #[test]
    fn a_record_becomes_a_line() {
        let r = json!({
            "id": 1_234_567_890_123_u64, "code": "UO-20261201000001", "agentId": 2_001_u64,
            "agentId_name": "苏州精工", "orderDetailId": 9_001_u64, "lineno": 10,
            "productCode": "X5", "productName": "X5 主轴", "qty": 10, "totalOutStockQuantity": 4,
            "hopeReceiveDate": "2026-12-01 00:00:00", "sendDate": "2026-11-28 00:00:00",
            "nextStatus": "DELIVERY_PART", "pubts": "2026-11-20 10:00:00"
        });
        let l = line_of(&r);
        assert_eq!(l.order, "UO-20261201000001");
        assert_eq!(l.line, "9001");
        assert_eq!(l.customer.name, "苏州精工");
        assert_eq!(l.qty_open, 6.0);
        assert_eq!(l.confirmed_date.as_deref(), Some("2026-11-28"));
        assert_eq!(l.promised_date.as_deref(), Some("2026-12-01"));
        assert_eq!(l.status, LineStatus::Open);
        let mut done = r.clone();
        done["totalOutStockQuantity"] = json!(10);
        assert_eq!(line_of(&done).status, LineStatus::Completed);
        let mut cancelled = r;
        cancelled["nextStatus"] = json!("OPPOSE");
        assert_eq!(line_of(&cancelled).status, LineStatus::Closed);
    }
}
