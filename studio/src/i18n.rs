//! The studio's words in Simplified Chinese (the default) and English.

/// A language the studio speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    pub fn parse(code: &str) -> Option<Lang> {
        match code {
            "zh" => Some(Lang::Zh),
            "en" => Some(Lang::En),
            _ => None,
        }
    }
    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }
    pub fn html_code(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }
    pub fn other(self) -> Lang {
        match self {
            Lang::Zh => Lang::En,
            Lang::En => Lang::Zh,
        }
    }
}

/// Every user-visible text of the studio.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Text {
    AppTitle,
    SwitchLanguage,
    SignOut,
    SignInTitle,
    SignInHint,
    TokenLabel,
    SignIn,
    TokenRequired,
    TokenRejected,
    ServerUnreachable,
    Flows,
    Loading,
    NoFlows,
    Name,
    Published,
    Latest,
    LastRun,
    NeverRun,
    NewFlow,
    NewFlowName,
    BackToList,
    Palette,
    Undo,
    Redo,
    Save,
    SaveMessage,
    Saved,
    Unsaved,
    Conflict,
    Reload,
    Problems,
    NoProblems,
    ConnectionRefused,
    DeleteNode,
    Inspector,
    SelectANode,
    Label,
    Run,
    Versions,
    Compare,
    Publish,
    Rollback,
    PublishedBadge,
    DiscardChanges,
}

/// The text in `lang`.
pub fn tr(lang: Lang, text: Text) -> &'static str {
    use Text::*;
    match (lang, text) {
        (Lang::Zh, AppTitle) => "Trellis 工作室",
        (Lang::En, AppTitle) => "Trellis Studio",
        (Lang::Zh, SwitchLanguage) => "English",
        (Lang::En, SwitchLanguage) => "中文",
        (Lang::Zh, SignOut) => "退出登录",
        (Lang::En, SignOut) => "Sign out",
        (Lang::Zh, SignInTitle) => "登录",
        (Lang::En, SignInTitle) => "Sign in",
        (Lang::Zh, SignInHint) => {
            "粘贴 API 令牌。首次启动时生成的管理员令牌保存在数据目录的 admin-token 文件中（默认 ./trellis-data/admin-token）。"
        }
        (Lang::En, SignInHint) => {
            "Paste an API token. The admin token created on first start is in the data directory's admin-token file (by default ./trellis-data/admin-token)."
        }
        (Lang::Zh, TokenLabel) => "API 令牌",
        (Lang::En, TokenLabel) => "API token",
        (Lang::Zh, SignIn) => "登录",
        (Lang::En, SignIn) => "Sign in",
        (Lang::Zh, TokenRequired) => "请输入令牌。",
        (Lang::En, TokenRequired) => "Enter a token.",
        (Lang::Zh, TokenRejected) => "令牌无效或已被吊销。",
        (Lang::En, TokenRejected) => "The token is unknown or revoked.",
        (Lang::Zh, ServerUnreachable) => "无法连接服务器，请稍后重试。",
        (Lang::En, ServerUnreachable) => "The server cannot be reached; try again shortly.",
        (Lang::Zh, Flows) => "流程",
        (Lang::En, Flows) => "Flows",
        (Lang::Zh, Loading) => "加载中…",
        (Lang::En, Loading) => "Loading…",
        (Lang::Zh, NoFlows) => "还没有流程。",
        (Lang::En, NoFlows) => "No flows yet.",
        (Lang::Zh, Name) => "名称",
        (Lang::En, Name) => "Name",
        (Lang::Zh, Published) => "已发布版本",
        (Lang::En, Published) => "Published",
        (Lang::Zh, Latest) => "最新版本",
        (Lang::En, Latest) => "Latest",
        (Lang::Zh, LastRun) => "最近运行",
        (Lang::En, LastRun) => "Last run",
        (Lang::Zh, NeverRun) => "未运行",
        (Lang::En, NeverRun) => "Never run",
        (Lang::Zh, NewFlow) => "新建流程",
        (Lang::En, NewFlow) => "New flow",
        (Lang::Zh, NewFlowName) => "新流程",
        (Lang::En, NewFlowName) => "New flow",
        (Lang::Zh, BackToList) => "← 流程列表",
        (Lang::En, BackToList) => "← Flows",
        (Lang::Zh, Palette) => "节点",
        (Lang::En, Palette) => "Nodes",
        (Lang::Zh, Undo) => "撤销",
        (Lang::En, Undo) => "Undo",
        (Lang::Zh, Redo) => "重做",
        (Lang::En, Redo) => "Redo",
        (Lang::Zh, Save) => "保存",
        (Lang::En, Save) => "Save",
        (Lang::Zh, SaveMessage) => "版本说明",
        (Lang::En, SaveMessage) => "Version message",
        (Lang::Zh, Saved) => "已保存",
        (Lang::En, Saved) => "Saved",
        (Lang::Zh, Unsaved) => "有未保存的修改",
        (Lang::En, Unsaved) => "Unsaved changes",
        (Lang::Zh, Conflict) => "有人在此期间保存了版本",
        (Lang::En, Conflict) => "Someone saved a newer version meanwhile: version",
        (Lang::Zh, Reload) => "重新加载",
        (Lang::En, Reload) => "Reload",
        (Lang::Zh, Problems) => "问题",
        (Lang::En, Problems) => "Problems",
        (Lang::Zh, NoProblems) => "没有问题",
        (Lang::En, NoProblems) => "No problems",
        (Lang::Zh, ConnectionRefused) => "不能这样连接",
        (Lang::En, ConnectionRefused) => "That connection is not allowed",
        (Lang::Zh, DeleteNode) => "删除节点",
        (Lang::En, DeleteNode) => "Delete node",
        (Lang::Zh, Inspector) => "节点设置",
        (Lang::En, Inspector) => "Node settings",
        (Lang::Zh, SelectANode) => "选择一个节点以编辑其设置。",
        (Lang::En, SelectANode) => "Select a node to edit its settings.",
        (Lang::Zh, Label) => "显示名称",
        (Lang::En, Label) => "Label",
        (Lang::Zh, Run) => "运行",
        (Lang::En, Run) => "Run",
        (Lang::Zh, Versions) => "版本",
        (Lang::En, Versions) => "Versions",
        (Lang::Zh, Compare) => "与当前对比",
        (Lang::En, Compare) => "Compare",
        (Lang::Zh, Publish) => "发布",
        (Lang::En, Publish) => "Publish",
        (Lang::Zh, Rollback) => "回滚到此版本",
        (Lang::En, Rollback) => "Roll back to this",
        (Lang::Zh, DiscardChanges) => "有未保存的修改，确定放弃吗？",
        (Lang::En, DiscardChanges) => "Discard unsaved changes?",
        (Lang::Zh, PublishedBadge) => "已发布",
        (Lang::En, PublishedBadge) => "published",
    }
}

/// A run status in `lang`.
pub fn status(lang: Lang, status: &str) -> String {
    let zh = match status {
        "queued" => "排队中",
        "running" => "运行中",
        "waiting" => "等待中",
        "succeeded" => "成功",
        "failed" => "失败",
        "cancelled" => "已取消",
        other => return other.to_owned(),
    };
    match lang {
        Lang::Zh => zh.to_owned(),
        Lang::En => status.to_owned(),
    }
}
