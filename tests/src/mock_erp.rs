//! Mock ERPs speaking the documented shapes of Kingdee K/3 Cloud's WebAPI, SAP S/4HANA's
//! OData V2 sales-order and outbound-delivery APIs, and Yonyou BIP's OpenAPI, over one
//! shared set of order lines. Each pages its answers (small pages, so a read crosses
//! several), and can let its session or token expire after a number of requests, as the
//! real systems do: Kingdee with `MsgCode` 1 and HTTP 200, SAP with a 401 HTML logon page,
//! Yonyou with `310036` 非法token and HTTP 200.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};

pub const USER: &str = "api-user";
pub const PASSWORD: &str = "pw-7Hq2";
pub const ACCT_ID: &str = "5867f8d847e804";
pub const APP_KEY: &str = "41832a3d2df94989b500da6a22268747";
pub const APP_SECRET: &str = "yy-secret-9XkP";
pub const TENANT: &str = "tenant-sz01";

/// Which ERP a mock is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum System {
    Kingdee,
    Sap,
    Yonyou,
}

impl System {
    /// The connector serving it.
    pub fn connector(self) -> &'static str {
        match self {
            System::Kingdee => "erp-kingdee",
            System::Sap => "erp-sap",
            System::Yonyou => "erp-yonyou",
        }
    }
}

/// One order line in the mock ERP.
#[derive(Clone, Debug)]
pub struct Line {
    pub order: String,
    pub line: u32,
    pub customer: String,
    pub customer_name: String,
    pub product: String,
    pub qty: f64,
    pub shipped: f64,
    /// The confirmed delivery date, `YYYY-MM-DD`.
    pub date: String,
    /// Seconds after the mock's epoch (30 days ago) the order last changed.
    pub modified: i64,
}

#[derive(Debug, Default)]
pub struct ErpState {
    pub lines: Vec<Line>,
    /// Rows (Kingdee, Yonyou) or orders (SAP) per page.
    pub page_size: usize,
    /// Logins (Kingdee), Basic-authenticated requests (SAP), tokens issued (Yonyou).
    pub logins: u32,
    /// Page requests answered with data.
    pub pages: u32,
    /// Requests refused for an expired session or token.
    pub expired: u32,
    /// The session or token now valid.
    pub session: Option<String>,
    /// The session expires after this many more answered pages (`None`: never).
    pub expire_after: Option<u32>,
    /// SAP: late outbound deliveries (delivery, order, line, planned goods issue date).
    pub late_deliveries: Vec<(String, String, u32, String)>,
    clock: i64,
}

impl ErpState {
    fn sorted(&self) -> Vec<Line> {
        let mut lines = self.lines.clone();
        lines.sort_by(|a, b| (a.modified, &a.order, a.line).cmp(&(b.modified, &b.order, b.line)));
        lines
    }

    /// One page answered: counts it, and lets the session expire when its time is up.
    fn answered(&mut self) {
        self.pages += 1;
        if let Some(n) = self.expire_after.as_mut() {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.session = None;
                self.expire_after = None;
            }
        }
    }
}

/// Where the mock's modification stamps count from: midnight UTC 30 days ago (so a
/// first read from 60 days ago sees every line, whenever the tests run).
fn epoch() -> i64 {
    static EPOCH: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(|| {
        let now = chrono::Utc::now().timestamp();
        now - now.rem_euclid(86_400) - 30 * 86_400
    })
}

/// A stamp `secs` after [`epoch`].
fn at(secs: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(epoch() + secs, 0).unwrap_or_default()
}

#[derive(Clone, Debug)]
pub struct MockErp {
    pub system: System,
    pub addr: SocketAddr,
    pub state: Arc<Mutex<ErpState>>,
}

impl MockErp {
    /// A mock of `system` holding `lines`, paging by `page_size`.
    pub async fn start(system: System, lines: Vec<Line>, page_size: usize) -> MockErp {
        let clock = lines.iter().map(|l| l.modified).max().unwrap_or(0);
        let state = Arc::new(Mutex::new(ErpState {
            lines,
            page_size,
            clock,
            ..ErpState::default()
        }));
        let app = match system {
            System::Kingdee => axum::Router::new()
                .route(
                    "/K3Cloud/Kingdee.BOS.WebApi.ServicesStub.AuthService.ValidateUser.common.kdsvc",
                    axum::routing::post(kingdee_login),
                )
                .route(
                    "/K3Cloud/Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.ExecuteBillQuery.common.kdsvc",
                    axum::routing::post(kingdee_query),
                ),
            System::Sap => axum::Router::new()
                .route(
                    "/sap/opu/odata/sap/API_SALES_ORDER_SRV/A_SalesOrder",
                    axum::routing::get(sap_orders),
                )
                .route(
                    "/sap/opu/odata/sap/API_OUTBOUND_DELIVERY_SRV;v=0002/A_OutbDeliveryHeader",
                    axum::routing::get(sap_deliveries),
                ),
            System::Yonyou => axum::Router::new()
                .route(
                    "/open-auth/dataCenter/getGatewayAddress",
                    axum::routing::get(yonyou_gateway),
                )
                .route(
                    "/iuap-api-auth/open-auth/selfAppAuth/base/v1/getAccessToken",
                    axum::routing::get(yonyou_token),
                )
                .route(
                    "/iuap-api-gateway/yonbip/sd/voucherorder/list",
                    axum::routing::post(yonyou_list),
                ),
        }
        .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        MockErp {
            system,
            addr,
            state,
        }
    }

    /// The `base_url` the connector is configured with.
    pub fn base_url(&self) -> String {
        match self.system {
            System::Kingdee => format!("http://{}/K3Cloud", self.addr),
            System::Sap | System::Yonyou => format!("http://{}", self.addr),
        }
    }

    /// The poll config for this mock.
    pub fn poll_config(&self, start_from: &str, page_size: usize) -> Value {
        match self.system {
            System::Kingdee => json!({
                "base_url": self.base_url(), "acct_id": ACCT_ID,
                "page_size": page_size, "start_from": start_from,
            }),
            System::Sap => json!({ "base_url": self.base_url(), "start_from": start_from }),
            System::Yonyou => json!({
                "base_url": self.base_url(), "tenant_id": TENANT,
                "page_size": page_size, "start_from": start_from,
            }),
        }
    }

    /// Publishes the connector on the server behind `api`, grants it loopback, the
    /// key-value store and its secrets, sets them, and polls every second.
    pub async fn connect(&self, api: &crate::Api, start_from: &str, page_size: usize) {
        let name = self.system.connector();
        api.publish_connector(name).await;
        let secrets: Vec<(&str, &str)> = match self.system {
            System::Kingdee => vec![("username", USER), ("password", PASSWORD)],
            System::Sap => vec![("user", USER), ("password", PASSWORD)],
            System::Yonyou => vec![("app_key", APP_KEY), ("app_secret", APP_SECRET)],
        };
        api.put(
            &format!("/api/v1/connectors/{name}/grants"),
            &json!({"hosts": ["127.0.0.1"], "kv": true,
                    "secrets": secrets.iter().map(|(k, _)| *k).collect::<Vec<_>>()}),
        )
        .await;
        for (k, v) in secrets {
            api.put(
                &format!("/api/v1/connectors/{name}/secrets/{k}"),
                &json!({ "value": v }),
            )
            .await;
        }
        api.put(
            &format!("/api/v1/connectors/{name}/poll"),
            &json!({"interval_seconds": 1, "config": self.poll_config(start_from, page_size)}),
        )
        .await;
    }

    /// The ERP changes a line: `f` edits it and the order's modification stamp moves on.
    pub fn change(&self, order: &str, line: u32, f: impl FnOnce(&mut Line)) {
        let mut s = self.state.lock().unwrap();
        s.clock += 60;
        let clock = s.clock;
        for l in s.lines.iter_mut().filter(|l| l.order == order) {
            l.modified = clock;
        }
        if let Some(l) = s
            .lines
            .iter_mut()
            .find(|l| l.order == order && l.line == line)
        {
            f(l);
        }
    }

    /// The session (or token) expires after `n` more pages.
    pub fn expire_after(&self, n: u32) {
        self.state.lock().unwrap().expire_after = Some(n);
    }
}

// --- Kingdee K/3 Cloud -------------------------------------------------------------

async fn kingdee_login(State(s): State<Arc<Mutex<ErpState>>>, body: axum::Json<Value>) -> Response {
    let b = &body.0;
    let acct = b["acctID"].as_str().or(b["acctid"].as_str());
    if acct != Some(ACCT_ID)
        || b["username"].as_str() != Some(USER)
        || b["password"].as_str() != Some(PASSWORD)
    {
        return axum::Json(
            json!({"LoginResultType": 0, "Message": "用户名或密码错误", "KDSVCSessionId": null}),
        )
        .into_response();
    }
    let mut s = s.lock().unwrap();
    s.logins += 1;
    let sid = format!("kd-{}", s.logins);
    s.session = Some(sid.clone());
    (
        [
            (
                axum::http::header::SET_COOKIE,
                format!("kdservice-sessionid={sid}; path=/"),
            ),
            (
                axum::http::header::SET_COOKIE,
                format!("ASP.NET_SessionId=asp{}; path=/; HttpOnly", s.logins),
            ),
        ],
        axum::Json(json!({
            "Message": null, "MessageCode": "CheckPasswordPolicy", "LoginResultType": 1,
            "Context": {"UserLocale": "zh-CN", "SessionId": format!("asp{}", s.logins), "UserName": USER},
            "KDSVCSessionId": sid, "IsSuccessByAPI": true,
        })),
    )
        .into_response()
}

/// A `FilterString` condition `Field op 'value'` the mock understands.
fn conditions(filter: &str) -> Vec<(String, String, String)> {
    filter
        .split(" AND ")
        .filter_map(|c| {
            let c = c.trim();
            let (field, rest) = c.split_once(' ')?;
            let (op, value) = rest.trim().split_once(' ')?;
            Some((
                field.to_owned(),
                op.to_owned(),
                value.trim().trim_matches('\'').replace("''", "'"),
            ))
        })
        .collect()
}

async fn kingdee_query(
    State(s): State<Arc<Mutex<ErpState>>>,
    headers: HeaderMap,
    body: axum::Json<Value>,
) -> Response {
    let mut s = s.lock().unwrap();
    let cookie = headers
        .get("cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let sid = cookie
        .split(';')
        .find_map(|c| c.trim().strip_prefix("kdservice-sessionid="));
    if sid.is_none() || sid != s.session.as_deref() {
        s.expired += 1;
        return axum::Json(
            json!([[{"Result": {"ResponseStatus": {"ErrorCode": 500, "IsSuccess": false,
            "Errors": [{"FieldName": null, "Message": "会话信息已丢失，请重新登录", "DIndex": 0}],
            "SuccessEntitys": [], "SuccessMessages": [], "MsgCode": 1}}}]]),
        )
        .into_response();
    }
    let data = &body.0["data"];
    let form = data["FormId"].as_str().unwrap_or_default();
    let start = data["StartRow"].as_u64().unwrap_or(0) as usize;
    // The mock caps pages at its own size, like a server's limit.
    let limit = (data["Limit"].as_u64().unwrap_or(2000) as usize).min(s.page_size.max(1));
    if form != "SAL_SaleOrder" {
        s.answered();
        return axum::Json(json!([])).into_response();
    }
    let conds = conditions(data["FilterString"].as_str().unwrap_or_default());
    let rows: Vec<Value> = s
        .sorted()
        .into_iter()
        .filter(|l| {
            conds
                .iter()
                .all(|(f, op, v)| match (f.as_str(), op.as_str()) {
                    ("FModifyDate", ">=") => {
                        at(l.modified).format("%Y-%m-%dT%H:%M:%S").to_string()
                            >= v.replace(' ', "T")
                    }
                    ("FBillNo", "=") => &l.order == v,
                    ("FCustId.FNumber", "=") => &l.customer == v,
                    _ => true,
                })
        })
        .skip(start)
        .take(limit)
        .map(|l| {
            json!([
                l.order,
                l.customer,
                l.customer_name,
                100_000 + l.line,
                l.product,
                "",
                l.qty,
                l.shipped,
                l.qty - l.shipped,
                format!("{}T00:00:00", l.date),
                "A",
                "A",
                at(l.modified).format("%Y-%m-%dT%H:%M:%S").to_string()
            ])
        })
        .collect();
    s.answered();
    axum::Json(Value::Array(rows)).into_response()
}

// --- SAP S/4HANA OData V2 ------------------------------------------------------------

type Params = Query<std::collections::HashMap<String, String>>;

/// Whether the request is authenticated: Basic (a new session) or the session cookie.
/// Gives the cookie to set, or the 401 answer.
fn sap_auth(s: &mut ErpState, headers: &HeaderMap) -> Result<Option<String>, Box<Response>> {
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    if basic.as_deref() == Some(&format!("{USER}:{PASSWORD}")) {
        s.logins += 1;
        let sid = format!("sap-{}", s.logins);
        s.session = Some(sid.clone());
        return Ok(Some(format!(
            "SAP_SESSIONID_Y11_100={sid}; path=/; HttpOnly"
        )));
    }
    let cookie = headers
        .get("cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let sid = cookie
        .split(';')
        .find_map(|c| c.trim().strip_prefix("SAP_SESSIONID_Y11_100="));
    if sid.is_some() && sid == s.session.as_deref() {
        return Ok(None);
    }
    s.expired += 1;
    Err(Box::new((
        StatusCode::UNAUTHORIZED,
        [
            (axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                axum::http::header::WWW_AUTHENTICATE,
                "Basic realm=\"SAP NetWeaver Application Server [Y11/100]\"",
            ),
        ],
        "<html><head><title>Logon Error Message</title></head><body>Anmeldung fehlgeschlagen</body></html>",
    )
        .into_response()))
}

fn sap_date(day: &str) -> String {
    let ms = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .map(|d| {
            d.and_hms_opt(0, 0, 0)
                .unwrap_or_default()
                .and_utc()
                .timestamp_millis()
        })
        .unwrap_or(0);
    format!("/Date({ms})/")
}

fn with_cookie(cookie: Option<String>, body: Value) -> Response {
    match cookie {
        Some(c) => ([(axum::http::header::SET_COOKIE, c)], axum::Json(body)).into_response(),
        None => axum::Json(body).into_response(),
    }
}

async fn sap_orders(
    State(s): State<Arc<Mutex<ErpState>>>,
    headers: HeaderMap,
    Query(q): Params,
    uri: axum::http::Uri,
) -> Response {
    let mut s = s.lock().unwrap();
    let cookie = match sap_auth(&mut s, &headers) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let since = q
        .get("$filter")
        .and_then(|f| f.split("datetimeoffset'").nth(1))
        .and_then(|r| r.split('\'').next())
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp() - epoch())
        .unwrap_or(i64::MIN);
    // Orders (not lines) are the entities; each with its items and schedule lines.
    let mut orders: Vec<(i64, String)> = s
        .lines
        .iter()
        .filter(|l| l.modified >= since)
        .map(|l| (l.modified, l.order.clone()))
        .collect();
    orders.sort();
    orders.dedup();
    let skip: usize = q
        .get("$skiptoken")
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let page = s.page_size.max(1);
    let results: Vec<Value> = orders
        .iter()
        .skip(skip)
        .take(page)
        .map(|(modified, order)| {
            let lines: Vec<&Line> = s.lines.iter().filter(|l| &l.order == order).collect();
            let first = lines[0];
            json!({
                "__metadata": {"type": "API_SALES_ORDER_SRV.A_SalesOrderType"},
                "SalesOrder": order, "SoldToParty": first.customer, "DeliveryBlockReason": "",
                "LastChangeDateTime": format!("/Date({}+0000)/", at(*modified).timestamp_millis()),
                "to_Item": {"results": lines.iter().map(|l| json!({
                    "SalesOrder": order, "SalesOrderItem": (l.line * 10).to_string(),
                    "Material": l.product, "RequestedQuantity": format!("{:.3}", l.qty),
                    "SDProcessStatus": if l.shipped >= l.qty { "C" } else { "A" },
                    "SalesDocumentRjcnReason": "",
                    "to_ScheduleLine": {"results": [{
                        "ScheduleLine": "1", "RequestedDeliveryDate": sap_date(&l.date),
                        "ConfirmedDeliveryDate": sap_date(&l.date),
                        "ConfdOrderQtyByMatlAvailCheck": format!("{:.3}", l.qty),
                        "DeliveredQtyInOrderQtyUnit": format!("{:.3}", l.shipped),
                        "OpenConfdDelivQtyInOrdQtyUnit": format!("{:.3}", l.qty - l.shipped),
                    }]},
                })).collect::<Vec<_>>()},
            })
        })
        .collect();
    let mut d = json!({ "results": results });
    if skip + page < orders.len() {
        // The server's own paging: an absolute link carrying every option and the token.
        let query: Vec<String> = uri
            .query()
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.starts_with("$skiptoken="))
            .map(str::to_owned)
            .collect();
        d["__next"] = json!(format!(
            "http://{}{}?{}&$skiptoken={}",
            headers
                .get("host")
                .and_then(|h| h.to_str().ok())
                .unwrap_or_default(),
            uri.path(),
            query.join("&"),
            skip + page
        ));
    }
    s.answered();
    with_cookie(cookie, json!({ "d": d }))
}

async fn sap_deliveries(State(s): State<Arc<Mutex<ErpState>>>, headers: HeaderMap) -> Response {
    let mut s = s.lock().unwrap();
    let cookie = match sap_auth(&mut s, &headers) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let results: Vec<Value> = s
        .late_deliveries
        .iter()
        .map(|(delivery, order, line, planned)| {
            json!({
                "DeliveryDocument": delivery, "SoldToParty": "17100001",
                "PlannedGoodsIssueDate": sap_date(planned), "OverallGoodsMovementStatus": "A",
                "to_DeliveryDocumentItem": {"results": [{
                    "DeliveryDocument": delivery, "DeliveryDocumentItem": "10",
                    "ReferenceSDDocument": order, "ReferenceSDDocumentItem": (line * 10).to_string(),
                    "Material": "X5", "ActualDeliveryQuantity": "2.000",
                }]},
            })
        })
        .collect();
    with_cookie(cookie, json!({ "d": { "results": results } }))
}

// --- Yonyou BIP OpenAPI ----------------------------------------------------------------

async fn yonyou_gateway(headers: HeaderMap, Query(q): Params) -> axum::Json<Value> {
    if q.get("tenantId").map(String::as_str) != Some(TENANT) {
        return axum::Json(json!({"code": "500", "message": "根据租户id获取网关地址出现异常"}));
    }
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    axum::Json(json!({"code": "00000", "message": "成功！", "data": {
        "gatewayUrl": format!("http://{host}/iuap-api-gateway"),
        "tokenUrl": format!("http://{host}/iuap-api-auth"),
    }}))
}

async fn yonyou_token(
    State(s): State<Arc<Mutex<ErpState>>>,
    Query(q): Params,
) -> axum::Json<Value> {
    use hmac::Mac as _;
    if q.get("appKey").map(String::as_str) != Some(APP_KEY) {
        return axum::Json(json!({"code": "10018", "message": "应用不存在或appKey已停用"}));
    }
    let timestamp = q.get("timestamp").cloned().unwrap_or_default();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(APP_SECRET.as_bytes()).unwrap();
    mac.update(format!("appKey{APP_KEY}timestamp{timestamp}").as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    // axum's Query has URL-decoded the signature once, as Yonyou does.
    if q.get("signature") != Some(&expected) {
        return axum::Json(json!({"code": "10030", "message": "签名错误"}));
    }
    let mut s = s.lock().unwrap();
    s.logins += 1;
    let token = format!("ytok+{}/{}", s.logins, APP_KEY);
    s.session = Some(token.clone());
    axum::Json(
        json!({"code": "00000", "message": "成功！", "data": {"access_token": token, "expire": 7200}}),
    )
}

async fn yonyou_list(
    State(s): State<Arc<Mutex<ErpState>>>,
    Query(q): Params,
    body: axum::Json<Value>,
) -> axum::Json<Value> {
    let mut s = s.lock().unwrap();
    if s.session.is_none() || q.get("access_token") != s.session.as_ref() {
        s.expired += 1;
        return axum::Json(json!({"code": "310036", "message": "非法token"}));
    }
    let b = &body.0;
    let index = b["pageIndex"].as_u64().unwrap_or(1).max(1) as usize;
    let size = (b["pageSize"].as_u64().unwrap_or(10) as usize).min(s.page_size.max(1));
    let filters: Vec<Value> = b["simpleVOs"].as_array().cloned().unwrap_or_default();
    let stamp = |l: &Line| at(l.modified).format("%Y-%m-%d %H:%M:%S").to_string();
    let all: Vec<Line> = s
        .sorted()
        .into_iter()
        .filter(|l| {
            filters.iter().all(|f| {
                let v1 = f["value1"].as_str().unwrap_or_default();
                match (f["field"].as_str(), f["op"].as_str()) {
                    (Some("pubts"), Some("between")) => {
                        let v2 = f["value2"].as_str().unwrap_or_default();
                        stamp(l).as_str() >= v1 && stamp(l).as_str() <= v2
                    }
                    (Some("code"), Some("eq")) => l.order == v1,
                    _ => true,
                }
            })
        })
        .collect();
    let count = all.len();
    let records: Vec<Value> = all
        .iter()
        .skip((index - 1) * size)
        .take(size)
        .map(|l| {
            json!({
                "id": format!("{}", 1_000_000 + l.line), "code": l.order,
                "agentId": l.customer, "agentId_name": l.customer_name,
                "orderDetailId": 9_000 + l.line, "lineno": l.line,
                "productCode": l.product, "qty": l.qty, "totalOutStockQuantity": l.shipped,
                "hopeReceiveDate": format!("{} 00:00:00", l.date),
                "sendDate": format!("{} 00:00:00", l.date),
                "nextStatus": if l.shipped >= l.qty { "ENDORDER" } else { "DELIVERGOODS" },
                "pubts": stamp(l),
            })
        })
        .collect();
    s.answered();
    axum::Json(json!({"code": "200", "message": "操作成功", "data": {
        "pageIndex": index, "pageSize": size, "recordCount": count,
        "pageCount": count.div_ceil(size).max(1), "recordList": records,
    }}))
}
