//! Kingdee K/3 Cloud (金蝶云星空) through its WebAPI.
//!
//! **Session.** `AuthService.ValidateUser` (account set `acct_id`, secrets `username` and
//! `password`, lcid 2052), or `AuthService.LoginByAppSecret` when the secrets `app_id` and
//! `app_secret` are set. The session (the `kdservice-sessionid` and `ASP.NET_SessionId`
//! cookies) is kept in the key-value store and sent as cookies and as the
//! `kdservice-sessionid` header. Kingdee answers a lost session with HTTP 200 and
//! `MsgCode` 1 (会话信息已丢失，请重新登录): the connector logs in again and repeats the
//! request once.
//!
//! **Reading.** `DynamicFormService.ExecuteBillQuery` on `SAL_SaleOrder` (one row per order
//! line) and `SAL_OUTSTOCK`, paged with `StartRow` and `Limit` until a page comes back
//! short, in a stable order (modification date, bill number, entry id).
//!
//! **Poll** (`erp.order_changed`, `erp.delivery_overdue`, `erp.delivery_completed`):
//! approved orders changed since the cursor's watermark (`FModifyDate`), folded into the
//! watched open lines by `erp_core`. **Operations**: `read_order` (an order's lines and
//! its outbound deliveries) and `open_orders` (a customer's lines still to ship).

#![cfg_attr(
    not(target_arch = "wasm32"),
    allow(
        dead_code,
        reason = "the entry points are exported only in the wasm32 component; native builds run the unit tests"
    )
)]

use erp_core::{Customer, LineStatus, OrderLine, PollState, Watch, date_of, number, text};
use serde::{Deserialize, Serialize};
use trellis_connector_sdk::{
    Call, Connector, Context, Error, JsonSchema, Manifest, Operation, Output, Polled, Value, http,
    json, kv, now_ms, secrets,
};

const SYSTEM: &str = "kingdee";
const LOGIN: &str = "Kingdee.BOS.WebApi.ServicesStub.AuthService.ValidateUser.common.kdsvc";
const LOGIN_BY_APP: &str =
    "Kingdee.BOS.WebApi.ServicesStub.AuthService.LoginByAppSecret.common.kdsvc";
const QUERY: &str =
    "Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.ExecuteBillQuery.common.kdsvc";
/// Where the session is kept, and for how long (Kingdee's own idle timeout is about 20
/// minutes; a lost session is noticed and renewed anyway).
const SESSION_KEY: &str = "session";
const SESSION_TTL_MS: u64 = 15 * 60 * 1000;
/// The most pages one read takes (at 2,000 rows a page, 400,000 lines).
const MAX_PAGES: usize = 200;

/// The sales-order columns read, in this order.
const ORDER_FIELDS: [&str; 13] = [
    "FBillNo",
    "FCustId.FNumber",
    "FCustId.FName",
    "FSaleOrderEntry_FEntryID",
    "FMaterialId.FNumber",
    "FMaterialId.FName",
    "FQty",
    "FStockOutQty",
    "FRemainOutQty",
    "FDeliveryDate",
    "FCloseStatus",
    "FMrpCloseStatus",
    "FModifyDate",
];

fn zh_cn() -> u32 {
    2052
}

fn page() -> u32 {
    2000
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
struct Site {
    /// The K/3 Cloud address, e.g. `https://erp.example.com/K3Cloud`.
    #[schemars(extend("x-trellis" = { "label": {"zh": "金蝶云星空地址", "en": "K/3 Cloud address"} }))]
    base_url: String,
    /// The account set (数据中心) id.
    #[schemars(extend("x-trellis" = { "label": {"zh": "账套 ID", "en": "Account set id"} }))]
    acct_id: String,
    /// The language of the session (2052: Simplified Chinese).
    #[serde(default = "zh_cn")]
    lcid: u32,
    /// Rows per page (Kingdee allows up to 2,000 on older versions, 10,000 on newer).
    #[serde(default = "page")]
    #[schemars(range(min = 1, max = 10000))]
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
    /// The sales order's bill number (单据编号), e.g. `XSDD000123`.
    order: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct CustomerInput {
    /// The customer's number (客户编码).
    customer: String,
}

#[derive(Debug, Serialize, JsonSchema)]
struct Delivery {
    bill: String,
    date: Option<String>,
    product: String,
    qty: f64,
    order_line: String,
}

#[derive(Debug, Serialize, JsonSchema)]
struct OrderOutput {
    order: String,
    /// Its lines, normalised (customer, product, quantities, dates, status).
    #[schemars(with = "Vec<Value>")]
    lines: Vec<OrderLine>,
    deliveries: Vec<Delivery>,
}

#[derive(Debug, Serialize, JsonSchema)]
struct LinesOutput {
    #[schemars(with = "Vec<Value>")]
    lines: Vec<OrderLine>,
}

struct Kingdee;

impl Connector for Kingdee {
    fn manifest() -> Manifest {
        Manifest::new("erp-kingdee", env!("CARGO_PKG_VERSION"))
            .display("金蝶云星空", "Kingdee K/3 Cloud")
            .description(
                "Reads sales orders and outbound deliveries from Kingdee K/3 Cloud; polls \
                 order changes, overdue and completed deliveries.",
            )
            // Each customer's own K/3 Cloud: an admin grants its host.
            .host("*")
            .secret("username")
            .secret("password")
            .secret("app_id")
            .secret("app_secret")
            .kv()
            .poll()
            .operation(Operation::new::<Site, OrderInput, OrderOutput>(
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
        let filter = format!(
            "FModifyDate >= '{}' AND FDocumentStatus = 'C'",
            quote(&since)
        );
        let lines = read_lines(&config.site, &filter)?;
        let events = state.advance(SYSTEM, lines, today)?;
        Ok(Polled {
            events,
            cursor: Some(state.to_cursor()),
        })
    }
}

/// A value inside a filter's quotes.
fn quote(value: &str) -> String {
    value.replace('\'', "''")
}

fn read_order(site: Site, input: OrderInput, _: &Context) -> Result<OrderOutput, Error> {
    let order = quote(&input.order);
    let lines = read_lines(&site, &format!("FBillNo = '{order}'"))?;
    if lines.is_empty() {
        return Err(Error::NotFound(format!(
            "no sales order {:?} in K/3 Cloud",
            input.order
        )));
    }
    let rows = query(
        &site,
        "SAL_OUTSTOCK",
        &[
            "FBillNo",
            "FDate",
            "FMaterialID.FNumber",
            "FRealQty",
            "FSOEntryId",
        ],
        &format!("FSoorDerno = '{order}'"),
        "FDate ASC, FBillNo ASC",
    )?;
    let deliveries = rows
        .iter()
        .map(|r| Delivery {
            bill: text(&r[0]),
            date: date_of(&text(&r[1])).map(|d| d.to_string()),
            product: text(&r[2]),
            qty: number(&r[3]),
            order_line: text(&r[4]),
        })
        .collect();
    Ok(OrderOutput {
        order: input.order,
        lines,
        deliveries,
    })
}

fn open_orders(site: Site, input: CustomerInput, _: &Context) -> Result<LinesOutput, Error> {
    let filter = format!(
        "FCustId.FNumber = '{}' AND FCloseStatus = 'A' AND FRemainOutQty > 0",
        quote(&input.customer)
    );
    Ok(LinesOutput {
        lines: read_lines(&site, &filter)?,
    })
}

/// Every sales-order line the filter selects, normalised.
fn read_lines(site: &Site, filter: &str) -> Result<Vec<OrderLine>, Error> {
    Ok(query(
        site,
        "SAL_SaleOrder",
        &ORDER_FIELDS,
        filter,
        "FModifyDate ASC, FBillNo ASC, FSaleOrderEntry_FEntryID ASC",
    )?
    .iter()
    .map(|r| line_of(r))
    .collect())
}

/// One `SAL_SaleOrder` row (columns in [`ORDER_FIELDS`] order) as an order line.
fn line_of(r: &[Value]) -> OrderLine {
    let at = |i: usize| r.get(i).unwrap_or(&Value::Null);
    let (qty, shipped, open) = (number(at(6)), number(at(7)), number(at(8)));
    let closed = text(at(10)) == "B" || text(at(11)) == "B";
    let status = if open <= 0.0 && shipped > 0.0 {
        LineStatus::Completed
    } else if closed || open <= 0.0 {
        LineStatus::Closed
    } else {
        LineStatus::Open
    };
    let date = date_of(&text(at(9))).map(|d| d.to_string());
    let name = text(at(2));
    OrderLine {
        customer: Customer {
            id: text(at(1)),
            name: if name.is_empty() { text(at(1)) } else { name },
        },
        order: text(at(0)),
        line: text(at(3)),
        product: text(at(4)),
        product_name: Some(text(at(5))).filter(|s| !s.is_empty()),
        qty_ordered: qty,
        qty_confirmed: qty,
        qty_shipped: shipped,
        qty_open: open.max(0.0),
        promised_date: date.clone(),
        confirmed_date: date,
        status,
        modified: text(at(12)),
    }
}

/// Every row of an `ExecuteBillQuery`, page by page.
fn query(
    site: &Site,
    form: &str,
    fields: &[&str],
    filter: &str,
    order: &str,
) -> Result<Vec<Vec<Value>>, Error> {
    let mut rows = Vec::new();
    for _ in 0..MAX_PAGES {
        let body = json!({ "data": {
            "FormId": form, "FieldKeys": fields.join(","), "FilterString": filter,
            "OrderString": order, "TopRowCount": 0, "StartRow": rows.len(),
            "Limit": site.page_size, "SubSystemId": "",
        }});
        let page = call(site, QUERY, &body)?;
        let page: Vec<Vec<Value>> = serde_json::from_value(page).map_err(|e| Error::Remote {
            code: 200,
            message: format!("ExecuteBillQuery did not answer rows: {e}"),
            retryable: false,
        })?;
        let n = page.len();
        rows.extend(page);
        if n < site.page_size as usize {
            return Ok(rows);
        }
    }
    Err(Error::Internal(format!(
        "more than {MAX_PAGES} pages of {form}; narrow the read"
    )))
}

/// What a Kingdee answer says went wrong, if anything: `(lost session, message)`.
fn failure(v: &Value) -> Option<(bool, String)> {
    // ExecuteBillQuery wraps its error in two arrays; other services answer it bare.
    let status = [
        v.pointer("/0/0/Result/ResponseStatus"),
        v.pointer("/Result/ResponseStatus"),
    ]
    .into_iter()
    .flatten()
    .next()?;
    if status["IsSuccess"].as_bool() == Some(true) {
        return None;
    }
    let message = status["Errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["Message"].as_str())
        .collect::<Vec<_>>()
        .join("; ");
    let lost = status["MsgCode"].as_i64() == Some(1)
        || message.contains("会话信息已丢失")
        || message.contains("请重新登录");
    Some((lost, message))
}

/// Calls a service with the session, logging in first when there is none and again once
/// when Kingdee says it was lost.
fn call(site: &Site, service: &str, body: &Value) -> Result<Value, Error> {
    let mut fresh = false;
    let mut session = match kv::get(SESSION_KEY)? {
        Some(s) => String::from_utf8_lossy(&s).into_owned(),
        None => {
            fresh = true;
            login(site)?
        }
    };
    loop {
        let url = format!("{}/{service}", site.base_url.trim_end_matches('/'));
        let sid = session
            .split(';')
            .find_map(|c| c.trim().strip_prefix("kdservice-sessionid="))
            .unwrap_or_default()
            .to_owned();
        let v = http::Request::post(url)
            .header("cookie", session.clone())
            .header("kdservice-sessionid", sid)
            .json(body)?
            .send()?
            .error_for_status()?
            .json_value()?;
        match failure(&v) {
            None => return Ok(v),
            Some((true, _)) if !fresh => {
                kv::delete(SESSION_KEY)?;
                session = login(site)?;
                fresh = true;
            }
            Some((lost, message)) => {
                return Err(if lost {
                    Error::AuthFailed(format!("K/3 Cloud dropped the new session: {message}"))
                } else {
                    Error::Remote {
                        code: 500,
                        message: format!("K/3 Cloud: {message}"),
                        retryable: false,
                    }
                });
            }
        }
    }
}

/// Logs in (by app secret when one is set, else by user and password) and keeps the
/// session; gives its cookies.
fn login(site: &Site) -> Result<String, Error> {
    let base = site.base_url.trim_end_matches('/');
    let request = match secrets::get("app_secret") {
        Ok(app_secret) => http::Request::post(format!("{base}/{LOGIN_BY_APP}")).json(&json!({
            "acctID": site.acct_id, "username": secrets::get("username")?,
            "appId": secrets::get("app_id")?, "appSecret": app_secret, "lcid": site.lcid,
        }))?,
        Err(_) => http::Request::post(format!("{base}/{LOGIN}")).json(&json!({
            "acctID": site.acct_id, "username": secrets::get("username")?,
            "password": secrets::get("password")?, "lcid": site.lcid,
        }))?,
    };
    let r = request.send()?.error_for_status()?;
    let v = r.json_value()?;
    if v["LoginResultType"].as_i64() != Some(1) {
        return Err(Error::AuthFailed(format!(
            "K/3 Cloud refused the login (LoginResultType {}): {}",
            v["LoginResultType"],
            v["Message"].as_str().unwrap_or("no message")
        )));
    }
    let mut cookies: Vec<String> = r
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .filter_map(|(_, c)| c.split(';').next().map(|c| c.trim().to_owned()))
        .filter(|c| c.starts_with("kdservice-sessionid=") || c.starts_with("ASP.NET_SessionId="))
        .collect();
    if !cookies
        .iter()
        .any(|c| c.starts_with("kdservice-sessionid="))
    {
        let sid = v["KDSVCSessionId"].as_str().unwrap_or_default();
        if sid.is_empty() {
            return Err(Error::AuthFailed(
                "K/3 Cloud answered the login without a session".into(),
            ));
        }
        cookies.push(format!("kdservice-sessionid={sid}"));
    }
    let session = cookies.join("; ");
    kv::set(SESSION_KEY, session.as_bytes(), Some(SESSION_TTL_MS))?;
    Ok(session)
}

// Exported only in the component: natively (where the unit tests run) the export names
// (`poll`, `invoke`…) would shadow the C library's.
#[cfg(target_arch = "wasm32")]
trellis_connector_sdk::export!(Kingdee);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_session_is_told_from_other_errors() {
        let lost = json!([[{"Result":{"ResponseStatus":{"ErrorCode":500,"IsSuccess":false,
            "Errors":[{"FieldName":null,"Message":"会话信息已丢失，请重新登录","DIndex":0}],
            "SuccessEntitys":[],"SuccessMessages":[],"MsgCode":1}}}]]);
        assert_eq!(
            failure(&lost),
            Some((true, "会话信息已丢失，请重新登录".to_owned()))
        );
        let field = json!({"Result":{"ResponseStatus":{"ErrorCode":500,"IsSuccess":false,
            "Errors":[{"Message":"元数据中标识为 FNope 的字段不存在"}],"MsgCode":0}}});
        assert_eq!(failure(&field).map(|f| f.0), Some(false));
        assert_eq!(failure(&json!([["XSDD1", "C001"]])), None);
        assert_eq!(failure(&json!([])), None);
    }

    #[test]
    fn a_row_becomes_a_line() {
        let row: Vec<Value> = serde_json::from_value(json!([
            "XSDD000123",
            "C001",
            "华东精密",
            100034,
            "X5-M",
            "X5 主轴",
            10.0,
            4.0,
            6.0,
            "2026-12-01T00:00:00",
            "A",
            "A",
            "2026-11-20T14:49:44.537"
        ]))
        .unwrap();
        let l = line_of(&row);
        assert_eq!(l.order, "XSDD000123");
        assert_eq!(l.line, "100034");
        assert_eq!(l.customer.name, "华东精密");
        assert_eq!(l.qty_open, 6.0);
        assert_eq!(l.confirmed_date.as_deref(), Some("2026-12-01"));
        assert_eq!(l.status, LineStatus::Open);
        assert_eq!(l.modified, "2026-11-20T14:49:44.537");
        let mut shipped = row.clone();
        shipped[7] = json!(10.0);
        shipped[8] = json!(0.0);
        assert_eq!(line_of(&shipped).status, LineStatus::Completed);
        let mut closed = row;
        closed[10] = json!("B");
        assert_eq!(line_of(&closed).status, LineStatus::Closed);
        assert_eq!(quote("O'Brien"), "O''Brien");
    }
}
