//! WeCom's customer-contact and group-chat operations, in its own request and answer
//! shapes: group sends to customers (a task the rep confirms in WeCom) and their results,
//! a customer's profile with its followers and tags, tagging, and internal group chats
//! (the task units' war rooms).

use serde::{Deserialize, Serialize};
use trellis_connector_sdk::{Context, Error, Event, JsonSchema, Operation, Polled, Value, json};

use crate::{AppMessage, call_api, call_api_with, default_api_base};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApiConfig {
    /// WeCom's API address; change it only for a private deployment.
    #[serde(default = "default_api_base")]
    #[schemars(extend("x-trellis" = { "label": {"zh": "接口地址", "en": "API address"} }))]
    api_base: String,
}

fn form(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn nonempty(list: &[String]) -> Vec<&str> {
    list.iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Something sent with a group send.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "msgtype", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum Attachment {
    /// An image uploaded before (its media id).
    Image { media_id: String },
    /// A link card (the solution pack, a case video).
    Link {
        title: String,
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        desc: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        picurl: Option<String>,
    },
    /// A mini program page.
    Miniprogram {
        title: String,
        appid: String,
        page: String,
        pic_media_id: String,
    },
}

impl Attachment {
    fn to_wecom(&self) -> Value {
        match self {
            Attachment::Image { media_id } => {
                json!({ "msgtype": "image", "image": { "media_id": media_id } })
            }
            Attachment::Link {
                title,
                url,
                desc,
                picurl,
            } => {
                let mut link = json!({ "title": title, "url": url });
                if let Some(d) = desc {
                    link["desc"] = json!(d);
                }
                if let Some(p) = picurl {
                    link["picurl"] = json!(p);
                }
                json!({ "msgtype": "link", "link": link })
            }
            Attachment::Miniprogram {
                title,
                appid,
                page,
                pic_media_id,
            } => json!({ "msgtype": "miniprogram", "miniprogram": {
                "title": title, "appid": appid, "page": page, "pic_media_id": pic_media_id } }),
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GroupSendInput {
    /// The customer's external contact id, as a list of one (the contact policy is kept
    /// per customer).
    external_userid: Vec<String>,
    /// The rep who sends it (their WeCom user id): WeCom asks them to confirm.
    #[schemars(extend("x-trellis" = { "people": true }))]
    sender: String,
    /// The text, if any.
    #[serde(default)]
    text: Option<String>,
    /// Up to 9 attachments.
    #[serde(default)]
    attachments: Vec<Attachment>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct GroupSendOutput {
    /// The group send's id, for its result.
    msgid: String,
    /// Customers WeCom could not include (not the sender's, or over their monthly cap).
    failed: Vec<String>,
}

/// `externalcontact/add_msg_template`: a group send to one customer, which the sender
/// confirms in WeCom. It passes Trellis's contact policy first (channel
/// `wecom_group_send`), which is kept per customer: a send to several is refused there.
pub(crate) fn create_group_send(
    config: ApiConfig,
    input: GroupSendInput,
    _: &Context,
) -> Result<GroupSendOutput, Error> {
    let customers = nonempty(&input.external_userid);
    if customers.is_empty() {
        return Err(Error::InvalidInput("external_userid names nobody".into()));
    }
    if input.text.as_deref().is_none_or(|t| t.trim().is_empty()) && input.attachments.is_empty() {
        return Err(Error::InvalidInput(
            "a group send needs a text or an attachment".into(),
        ));
    }
    if input.attachments.len() > 9 {
        return Err(Error::InvalidInput("at most 9 attachments".into()));
    }
    let mut body = json!({
        "chat_type": "single",
        "external_userid": customers,
        "sender": input.sender.trim(),
        "attachments": input.attachments.iter().map(Attachment::to_wecom).collect::<Vec<_>>(),
    });
    if let Some(t) = input.text.filter(|t| !t.trim().is_empty()) {
        body["text"] = json!({ "content": t });
    }
    let v = call_api(
        &config.api_base,
        "/cgi-bin/externalcontact/add_msg_template",
        Some(&body),
    )?;
    Ok(GroupSendOutput {
        msgid: v["msgid"].as_str().unwrap_or_default().to_owned(),
        failed: v["fail_list"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
    })
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GroupSendResultInput {
    /// The group send's id.
    msgid: String,
    /// The sender's WeCom user id.
    #[schemars(extend("x-trellis" = { "people": true }))]
    userid: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Delivery {
    external_userid: String,
    /// `pending` (not sent yet), `sent`, `not_a_contact` or `already_received` (the
    /// customer had another group send within the cap).
    status: String,
    /// When it was sent (seconds since the epoch), if it was.
    send_time: Option<i64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct GroupSendResult {
    deliveries: Vec<Delivery>,
    /// How many were sent.
    sent: usize,
}

/// `externalcontact/get_groupmsg_send_result`, every page: who got the group send.
pub(crate) fn get_group_send_result(
    config: ApiConfig,
    input: GroupSendResultInput,
    _: &Context,
) -> Result<GroupSendResult, Error> {
    let mut deliveries = Vec::new();
    let mut cursor = String::new();
    // At most 1,000 per page; a send reaches at most 10,000 customers.
    for _ in 0..20 {
        let body = json!({ "msgid": input.msgid, "userid": input.userid, "limit": 1000, "cursor": cursor });
        let v = call_api(
            &config.api_base,
            "/cgi-bin/externalcontact/get_groupmsg_send_result",
            Some(&body),
        )?;
        for d in v["send_list"].as_array().into_iter().flatten() {
            deliveries.push(Delivery {
                external_userid: d["external_userid"].as_str().unwrap_or_default().to_owned(),
                status: match d["status"].as_i64() {
                    Some(1) => "sent",
                    Some(2) => "not_a_contact",
                    Some(3) => "already_received",
                    _ => "pending",
                }
                .to_owned(),
                send_time: d["send_time"].as_i64().filter(|t| *t > 0),
            });
        }
        cursor = v["next_cursor"].as_str().unwrap_or_default().to_owned();
        if cursor.is_empty() {
            break;
        }
    }
    let sent = deliveries.iter().filter(|d| d.status == "sent").count();
    Ok(GroupSendResult { deliveries, sent })
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ContactInput {
    /// The customer's external contact id.
    external_userid: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Follower {
    userid: String,
    remark: Option<String>,
    /// When they added each other (seconds since the epoch).
    createtime: Option<i64>,
    /// The 联系我 code's or link's `state` they came through.
    state: Option<String>,
    tags: Vec<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Contact {
    external_userid: String,
    name: String,
    /// `wechat` or `wecom` (a WeCom user of another corp).
    kind: String,
    corp_name: Option<String>,
    position: Option<String>,
    follow_users: Vec<Follower>,
    /// The lead attributes this contact gives: name, company, position, tags.
    attributes: Value,
}

/// `externalcontact/get` (every page of followers): a customer's profile, the employees
/// who follow them and their tags, and the lead attributes they give.
pub(crate) fn get_external_contact(
    config: ApiConfig,
    input: ContactInput,
    _: &Context,
) -> Result<Contact, Error> {
    let id = input.external_userid.trim();
    if id.is_empty() {
        return Err(Error::InvalidInput("external_userid is empty".into()));
    }
    let mut profile = Value::Null;
    let mut follow_users = Vec::new();
    let mut cursor = String::new();
    for _ in 0..50 {
        let path = format!(
            "/cgi-bin/externalcontact/get?external_userid={}&cursor={}",
            form(id),
            form(&cursor)
        );
        let v = call_api(&config.api_base, &path, None)?;
        if profile.is_null() {
            profile = v["external_contact"].clone();
        }
        for f in v["follow_user"].as_array().into_iter().flatten() {
            let s = |k: &str| f[k].as_str().filter(|s| !s.is_empty()).map(str::to_owned);
            follow_users.push(Follower {
                userid: f["userid"].as_str().unwrap_or_default().to_owned(),
                remark: s("remark"),
                createtime: f["createtime"].as_i64(),
                state: s("state"),
                tags: f["tags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t["tag_name"].as_str().map(str::to_owned))
                    .collect(),
            });
        }
        cursor = v["next_cursor"].as_str().unwrap_or_default().to_owned();
        if cursor.is_empty() {
            break;
        }
    }
    let s = |k: &str| {
        profile[k]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let mut tags: Vec<String> = follow_users.iter().flat_map(|f| f.tags.clone()).collect();
    tags.sort();
    tags.dedup();
    let name = s("name").unwrap_or_default();
    let mut attributes = json!({ "name": name, "tags": tags });
    if let Some(c) = s("corp_name") {
        attributes["company"] = json!(c);
    }
    if let Some(p) = s("position") {
        attributes["position"] = json!(p);
    }
    Ok(Contact {
        external_userid: id.to_owned(),
        name,
        kind: if profile["type"].as_i64() == Some(2) {
            "wecom"
        } else {
            "wechat"
        }
        .to_owned(),
        corp_name: s("corp_name"),
        position: s("position"),
        follow_users,
        attributes,
    })
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TagsInput {
    /// The employee whose view of the customer is tagged (their WeCom user id).
    #[schemars(extend("x-trellis" = { "people": true }))]
    userid: String,
    external_userid: String,
    /// Tag ids to add (from WeCom's corp tag library).
    #[serde(default)]
    add_tag: Vec<String>,
    /// Tag ids to remove.
    #[serde(default)]
    remove_tag: Vec<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct TagsOutput {
    added: usize,
    removed: usize,
}

/// `externalcontact/mark_tag`: adds and removes corp tags on a customer.
pub(crate) fn mark_tags(
    config: ApiConfig,
    input: TagsInput,
    _: &Context,
) -> Result<TagsOutput, Error> {
    let (add, remove) = (nonempty(&input.add_tag), nonempty(&input.remove_tag));
    if add.is_empty() && remove.is_empty() {
        return Err(Error::InvalidInput("no tag to add or remove".into()));
    }
    let body = json!({ "userid": input.userid.trim(), "external_userid": input.external_userid.trim(),
                       "add_tag": add, "remove_tag": remove });
    call_api(
        &config.api_base,
        "/cgi-bin/externalcontact/mark_tag",
        Some(&body),
    )?;
    Ok(TagsOutput {
        added: add.len(),
        removed: remove.len(),
    })
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChatInput {
    /// The chat's name, e.g. "苏州精工-交付攻坚".
    name: String,
    /// The owner (a WeCom user id, one of the members).
    #[schemars(extend("x-trellis" = { "people": true }))]
    owner: String,
    /// The members' WeCom user ids (2 to 2,000, employees only).
    #[schemars(extend("x-trellis" = { "people": true }))]
    userlist: Vec<String>,
    /// A chat id of your own (letters and digits, at most 32), so creating it again
    /// (a retried step) finds the same chat.
    #[serde(default)]
    chatid: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct ChatOutput {
    chatid: String,
}

/// `appchat/create`: an internal group chat of employees.
pub(crate) fn create_group_chat(
    config: ApiConfig,
    input: ChatInput,
    _: &Context,
) -> Result<ChatOutput, Error> {
    let members = nonempty(&input.userlist);
    if members.len() < 2 || members.len() > 2000 {
        return Err(Error::InvalidInput(
            "a group chat has 2 to 2,000 members".into(),
        ));
    }
    let owner = input.owner.trim();
    if !members.contains(&owner) {
        return Err(Error::InvalidInput(
            "the owner must be one of the members".into(),
        ));
    }
    let mut body = json!({ "name": input.name.trim(), "owner": owner, "userlist": members });
    if let Some(id) = input
        .chatid
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        body["chatid"] = json!(id);
    }
    let v = call_api(&config.api_base, "/cgi-bin/appchat/create", Some(&body))?;
    Ok(ChatOutput {
        chatid: v["chatid"].as_str().unwrap_or_default().to_owned(),
    })
}

#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct ChatSendInput {
    chatid: String,
    #[serde(flatten)]
    message: AppMessage,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct ChatSendOutput {
    sent: bool,
}

/// `appchat/send`: a message into a group chat the app created.
pub(crate) fn send_group_chat(
    config: ApiConfig,
    input: ChatSendInput,
    _: &Context,
) -> Result<ChatSendOutput, Error> {
    let mut body = json!({ "chatid": input.chatid.trim(), "safe": 0 });
    input.message.write_into(&mut body)?;
    call_api(&config.api_base, "/cgi-bin/appchat/send", Some(&body))?;
    Ok(ChatSendOutput { sent: true })
}

/// A file's kind, as `media/upload` takes it.
#[derive(Clone, Copy, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum MediaKind {
    Image,
    Voice,
    Video,
    File,
}

impl MediaKind {
    fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Voice => "voice",
            MediaKind::Video => "video",
            MediaKind::File => "file",
        }
    }

    /// WeCom's size limit: images and videos 10 MB, voice 2 MB, files 20 MB.
    fn max_bytes(self) -> usize {
        match self {
            MediaKind::Image | MediaKind::Video => 10 << 20,
            MediaKind::Voice => 2 << 20,
            MediaKind::File => 20 << 20,
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MediaInput {
    /// `image` (JPG, PNG), `voice` (AMR), `video` (MP4) or `file`.
    #[serde(rename = "type")]
    #[schemars(extend("x-trellis" = { "label": {"zh": "类型", "en": "Type"} }))]
    kind: MediaKind,
    /// The file's name with its extension (WeCom checks it against the type).
    #[schemars(extend("x-trellis" = { "label": {"zh": "文件名", "en": "File name"} }))]
    filename: String,
    /// The file's bytes, in Base64.
    #[schemars(extend("x-trellis" = { "label": {"zh": "文件内容（Base64）", "en": "Content (Base64)"} }))]
    content_base64: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct MediaOutput {
    /// For image, voice, video and file messages and group-send images, for three days.
    media_id: String,
    #[serde(rename = "type")]
    kind: String,
    /// When WeCom stored it (epoch seconds, as WeCom gives it).
    created_at: String,
}

/// `media/upload`: a temporary file (three days) for messages and group sends, sent as
/// WeCom's multipart form (`media`, with its file name and length).
pub(crate) fn upload_media(
    config: ApiConfig,
    input: MediaInput,
    _: &Context,
) -> Result<MediaOutput, Error> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(input.content_base64.trim())
        .map_err(|e| Error::InvalidInput(format!("content_base64 is not Base64: {e}")))?;
    let max = input.kind.max_bytes();
    if bytes.len() <= 5 || bytes.len() > max {
        return Err(Error::InvalidInput(format!(
            "a {} must be more than 5 bytes and at most {} MB; this one is {} bytes",
            input.kind.as_str(),
            max >> 20,
            bytes.len()
        )));
    }
    let filename = input.filename.trim();
    if filename.is_empty() || filename.len() > 255 || filename.contains(['"', '\r', '\n', '\\']) {
        return Err(Error::InvalidInput(
            "filename must be 1 to 255 bytes without quotes, backslashes or line breaks".into(),
        ));
    }
    let (boundary, body) = multipart(filename, &bytes);
    let path = format!("/cgi-bin/media/upload?type={}", input.kind.as_str());
    let v = call_api_with(&config.api_base, &path, |url| {
        Ok(trellis_connector_sdk::http::Request::post(url)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body.clone()))
    })?;
    Ok(MediaOutput {
        media_id: v["media_id"].as_str().unwrap_or_default().to_owned(),
        kind: v["type"].as_str().unwrap_or(input.kind.as_str()).to_owned(),
        created_at: match &v["created_at"] {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => String::new(),
        },
    })
}

/// The `media` form part of `bytes` named `filename`, with a boundary that does not occur
/// in them.
fn multipart(filename: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    use sha1::{Digest, Sha1};
    let mut salt = 0u32;
    let boundary = loop {
        let mut h = Sha1::new();
        h.update(salt.to_be_bytes());
        h.update(bytes);
        let b = format!("trellis{:x}", h.finalize());
        if !bytes.windows(b.len()).any(|w| w == b.as_bytes()) {
            break b;
        }
        salt += 1;
    };
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"media\"; filename=\"{filename}\"; filelength={}\r\nContent-Type: application/octet-stream\r\n\r\n",
        bytes.len()
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (boundary, body)
}

/// What the reconciliation poll is set up with (`PUT /api/v1/connectors/wecom/poll`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReconcileConfig {
    #[serde(default = "default_api_base")]
    api_base: String,
    /// The employees whose customers are read (their WeCom user ids, at most 100).
    follow_users: Vec<String>,
}

/// Pages read per poll (100 customers each).
const PAGES_PER_POLL: usize = 5;

/// Reconciliation: changes made through WeCom's API send no callback, so the customers
/// of the granted employees are read again (`externalcontact/batch/get_by_user`, 100 a
/// page, a few pages per poll, the cursor carried between polls) and only the customers
/// whose profile, follower, remark, tags or channel differ from what was recorded become
/// events (`wecom.external_contact_synced`, with the lead attributes they give): each
/// state's event id is its fingerprint, so a state read again is recorded once. A
/// finished pass returns an empty cursor, so the next poll starts
/// the next pass.
pub(crate) fn reconcile(config: Value, cursor: Option<String>) -> Result<Polled, Error> {
    let config: ReconcileConfig = serde_json::from_value(config)
        .map_err(|e| Error::InvalidInput(format!("poll config: {e}")))?;
    let users = nonempty(&config.follow_users);
    if users.is_empty() || users.len() > 100 {
        return Err(Error::InvalidInput(
            "follow_users names 1 to 100 employees".into(),
        ));
    }
    let mut cursor = cursor.unwrap_or_default();
    let mut events = Vec::new();
    for _ in 0..PAGES_PER_POLL {
        let body = json!({ "userid_list": users, "cursor": cursor, "limit": 100 });
        let v = call_api(
            &config.api_base,
            "/cgi-bin/externalcontact/batch/get_by_user",
            Some(&body),
        )?;
        for item in v["external_contact_list"].as_array().into_iter().flatten() {
            let contact = &item["external_contact"];
            let follow = &item["follow_info"];
            let Some(id) = contact["external_userid"]
                .as_str()
                .filter(|s| !s.is_empty())
            else {
                continue;
            };
            let userid = follow["userid"].as_str().unwrap_or_default();
            let s = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_owned();
            let seen = json!({
                "name": s(contact, "name"), "corp_name": s(contact, "corp_name"),
                "position": s(contact, "position"), "remark": s(follow, "remark"),
                "tags": follow["tag_id"], "state": s(follow, "state"),
            });
            let print = trellis_connector_sdk::fingerprint(seen.to_string().as_bytes());
            let mut traits = json!({ "name": s(contact, "name") });
            for (from, to) in [("corp_name", "company"), ("position", "position")] {
                if let Some(v) = contact[from].as_str().filter(|v| !v.is_empty()) {
                    traits[to] = json!(v);
                }
            }
            events.push(Event {
                name: "wecom.external_contact_synced".into(),
                // The same state read again is the same event, which the intake records
                // once: only differences are recorded, and nothing is marked seen before
                // the intake has it (a crash repeats the poll, it loses nothing).
                id: Some(format!("sync:{id}:{userid}:{print}")),
                payload: json!({
                    "external_contact_id": id, "follow_user": userid, "owner": userid,
                    "remark": s(follow, "remark"), "tag_ids": follow["tag_id"],
                    "channel": s(follow, "state"), "traits": traits,
                }),
            });
        }
        cursor = v["next_cursor"].as_str().unwrap_or_default().to_owned();
        if cursor.is_empty() {
            break;
        }
    }
    Ok(Polled {
        events,
        cursor: Some(cursor),
    })
}

fn root_department() -> u64 {
    1
}

fn yes() -> bool {
    true
}

/// The most employees one read names (each name is one `user/get`).
const MAX_NAMED: usize = 2_000;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DepartmentInput {
    /// The department to read, with every department under it (1: the whole company).
    #[serde(default = "root_department")]
    department_id: u64,
    /// Read each employee's name and position too (one call each; at most 2,000).
    #[serde(default = "yes")]
    with_names: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Department {
    id: u64,
    parentid: u64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Employee {
    userid: String,
    /// The department the employee was listed under (their main one first).
    department: u64,
    name: Option<String>,
    position: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct DepartmentOutput {
    departments: Vec<Department>,
    members: Vec<Employee>,
}

/// `department/simplelist` (the department and those under it), then `user/list_id` (every
/// employee's user id and department, page by page), and `user/get` for each employee's
/// name and position: the people a directory import reads.
pub(crate) fn list_department_members(
    config: ApiConfig,
    input: DepartmentInput,
    _: &Context,
) -> Result<DepartmentOutput, Error> {
    let v = call_api(
        &config.api_base,
        &format!("/cgi-bin/department/simplelist?id={}", input.department_id),
        None,
    )?;
    let departments: Vec<Department> = v["department_id"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| {
            Some(Department {
                id: d["id"].as_u64()?,
                parentid: d["parentid"].as_u64().unwrap_or(0),
            })
        })
        .collect();
    let wanted: std::collections::BTreeSet<u64> = departments.iter().map(|d| d.id).collect();
    let mut members: Vec<Employee> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut cursor = String::new();
    for _ in 0..100 {
        let v = call_api(
            &config.api_base,
            "/cgi-bin/user/list_id",
            Some(&json!({ "cursor": cursor, "limit": 10_000 })),
        )?;
        for u in v["dept_user"].as_array().into_iter().flatten() {
            let (Some(userid), Some(department)) = (u["userid"].as_str(), u["department"].as_u64())
            else {
                continue;
            };
            if wanted.contains(&department) && seen.insert(userid.to_owned()) {
                members.push(Employee {
                    userid: userid.to_owned(),
                    department,
                    name: None,
                    position: None,
                });
            }
        }
        cursor = v["next_cursor"].as_str().unwrap_or_default().to_owned();
        if cursor.is_empty() {
            break;
        }
    }
    if input.with_names {
        if members.len() > MAX_NAMED {
            return Err(Error::InvalidInput(format!(
                "{} employees under department {}: name at most {MAX_NAMED} at once (read a smaller department, or without names)",
                members.len(),
                input.department_id
            )));
        }
        for m in &mut members {
            let v = call_api(
                &config.api_base,
                &format!("/cgi-bin/user/get?userid={}", form(&m.userid)),
                None,
            )?;
            let s = |k: &str| v[k].as_str().filter(|s| !s.is_empty()).map(str::to_owned);
            m.name = s("name");
            m.position = s("position");
        }
    }
    Ok(DepartmentOutput {
        departments,
        members,
    })
}

/// The operations' manifest entries.
pub(crate) mod operations {
    use super::*;

    pub(crate) fn create_group_send() -> Operation {
        Operation::new::<ApiConfig, GroupSendInput, GroupSendOutput>(
            "create_group_send",
            "客户群发（需成员确认）",
            "Group send to a customer (the rep confirms)",
        )
        .reaches_customer(
            "wecom_group_send",
            "/external_userid",
            "external_contact_id",
        )
    }

    pub(crate) fn get_group_send_result() -> Operation {
        Operation::new::<ApiConfig, GroupSendResultInput, GroupSendResult>(
            "get_group_send_result",
            "查询群发结果",
            "Group send result",
        )
    }

    pub(crate) fn get_external_contact() -> Operation {
        Operation::new::<ApiConfig, ContactInput, Contact>(
            "get_external_contact",
            "读取客户资料",
            "Get a customer's profile",
        )
    }

    pub(crate) fn mark_tags() -> Operation {
        Operation::new::<ApiConfig, TagsInput, TagsOutput>(
            "mark_tags",
            "给客户打标签",
            "Tag a customer",
        )
        .side_effects()
    }

    pub(crate) fn create_group_chat() -> Operation {
        Operation::new::<ApiConfig, ChatInput, ChatOutput>(
            "create_group_chat",
            "创建内部群聊",
            "Create a group chat",
        )
        .side_effects()
    }

    pub(crate) fn upload_media() -> Operation {
        Operation::new::<ApiConfig, MediaInput, MediaOutput>(
            "upload_media",
            "上传临时素材",
            "Upload a file (kept three days)",
        )
        .side_effects()
    }

    pub(crate) fn list_department_members() -> Operation {
        Operation::new::<ApiConfig, DepartmentInput, DepartmentOutput>(
            "list_department_members",
            "读取部门成员",
            "List a department's employees",
        )
    }

    pub(crate) fn send_group_chat() -> Operation {
        Operation::new::<ApiConfig, ChatSendInput, ChatSendOutput>(
            "send_group_chat",
            "发送群聊消息",
            "Post to a group chat",
        )
        .side_effects()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]
    use super::*;

    #[test]
    fn a_file_goes_up_as_one_media_part_with_its_length() {
        let bytes = b"\x89PNG\r\n\x1a\n--not-a-boundary".to_vec();
        let (boundary, body) = multipart("方案 X5.png", &bytes);
        let text = String::from_utf8_lossy(&body);
        assert!(text.starts_with(&format!("--{boundary}\r\n")), "{text}");
        assert!(
            text.contains(&format!(
                "Content-Disposition: form-data; name=\"media\"; filename=\"方案 X5.png\"; filelength={}\r\n",
                bytes.len()
            )),
            "{text}"
        );
        assert!(body.ends_with(format!("\r\n--{boundary}--\r\n").as_bytes()));
        let start = body.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert_eq!(&body[start..body.len() - boundary.len() - 8], &bytes[..]);
        // The boundary is never in the content, even when the content tries.
        let tricky = format!("--{boundary}").into_bytes();
        let (other, _) = multipart("a.bin", &tricky);
        assert!(!tricky.windows(other.len()).any(|w| w == other.as_bytes()));
    }
}
