//! URL categories: rules a business user writes ("paths under /pricing are 价格页") that
//! name what a visited page is, so scoring behaviours and flows can filter on
//! `event.properties.category` (`pricing`, `competitor_comparison`, `whitepaper`…).
//!
//! A rule matches a page's path by prefix, glob (`/docs/**/api*`) or regular expression,
//! or its title by a keyword; the first rule that matches names the category. The server
//! applies them at intake to every event that carries a `url` or `path`; the studio runs
//! the same code on recent pages to show what a draft would change before it is saved.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How a rule recognises a page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum UrlMatch {
    /// The path starts with `prefix` (`/pricing` matches `/pricing/enterprise`).
    PathPrefix { prefix: String },
    /// The path matches a glob: `*` within a segment, `**` across segments, `?`, `{a,b}`.
    Glob { pattern: String },
    /// The path matches a regular expression (anywhere, unless anchored).
    Regex { pattern: String },
    /// The page title contains `keyword` (any case).
    TitleKeyword { keyword: String },
}

/// One rule: what it matches, and the category it gives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UrlRule {
    /// Stable id (shown beside each page the rule caught).
    pub id: String,
    /// `snake_case` category, e.g. `competitor_comparison`.
    pub category: String,
    #[serde(rename = "match")]
    pub matcher: UrlMatch,
}

/// A workspace's rules, first match wins.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UrlCategories {
    pub rules: Vec<UrlRule>,
}

/// The categories the studio offers (others may be typed), with their words.
pub const KNOWN: [(&str, &str, &str); 8] = [
    ("pricing", "价格页", "Pricing"),
    ("competitor_comparison", "竞品对比", "Competitor comparison"),
    ("technical_docs", "技术文档", "Technical docs"),
    ("whitepaper", "白皮书", "Whitepaper"),
    ("case_study", "客户案例", "Case study"),
    ("product", "产品页", "Product"),
    ("contact", "联系我们", "Contact"),
    ("careers", "招聘", "Careers"),
];

/// The most rules a workspace keeps.
pub const MAX_RULES: usize = 500;

fn rule(id: &str, category: &str, matcher: UrlMatch) -> UrlRule {
    UrlRule {
        id: id.into(),
        category: category.into(),
        matcher,
    }
}

impl UrlCategories {
    /// Rules that fit most B2B sites, until a workspace saves its own.
    pub fn builtin() -> UrlCategories {
        use UrlMatch::*;
        let prefix = |p: &str| PathPrefix { prefix: p.into() };
        let glob = |p: &str| Glob { pattern: p.into() };
        UrlCategories {
            rules: vec![
                rule("pricing", "pricing", prefix("/pricing")),
                rule("pricing-zh", "pricing", glob("/**/{price,prices,jiage}*")),
                rule(
                    "compare",
                    "competitor_comparison",
                    Regex {
                        pattern: r"(?i)(^|[/_-])(compare|comparison|vs|versus|duibi)([/_.-]|$)"
                            .into(),
                    },
                ),
                rule(
                    "compare-title",
                    "competitor_comparison",
                    TitleKeyword {
                        keyword: "对比".into(),
                    },
                ),
                rule("whitepaper", "whitepaper", glob("/**/*whitepaper*")),
                rule(
                    "whitepaper-title",
                    "whitepaper",
                    TitleKeyword {
                        keyword: "白皮书".into(),
                    },
                ),
                rule("docs", "technical_docs", prefix("/docs")),
                rule(
                    "cases",
                    "case_study",
                    glob("/{case,cases,customers,case-studies}/**"),
                ),
                rule("careers", "careers", glob("/{careers,jobs,join-us}/**")),
                rule("contact", "contact", prefix("/contact")),
            ],
        }
    }

    /// Every problem, with its JSON pointer: a bad pattern, an empty or badly written
    /// category, a repeated id.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.rules.len() > MAX_RULES {
            out.push(("/rules".into(), format!("at most {MAX_RULES} rules")));
        }
        for (i, r) in self.rules.iter().enumerate() {
            let at = |field: &str| format!("/rules/{i}/{field}");
            if r.id.trim().is_empty() {
                out.push((at("id"), "a rule needs an id".into()));
            } else if self.rules[..i].iter().any(|o| o.id == r.id) {
                out.push((at("id"), format!("the id {:?} is used twice", r.id)));
            }
            if !is_category(&r.category) {
                out.push((
                    at("category"),
                    "a category is lower-case letters, digits and _ (e.g. competitor_comparison)"
                        .into(),
                ));
            }
            if let Err(e) = Matcher::new(&r.matcher) {
                let field = match r.matcher {
                    UrlMatch::PathPrefix { .. } => "match/prefix",
                    UrlMatch::Glob { .. } | UrlMatch::Regex { .. } => "match/pattern",
                    UrlMatch::TitleKeyword { .. } => "match/keyword",
                };
                out.push((at(field), e));
            }
        }
        out
    }

    /// The rules ready to apply; the problems otherwise.
    pub fn compile(&self) -> Result<Categoriser, Vec<(String, String)>> {
        let problems = self.problems();
        if !problems.is_empty() {
            return Err(problems);
        }
        let rules = self
            .rules
            .iter()
            .filter_map(|r| {
                Matcher::new(&r.matcher)
                    .ok()
                    .map(|m| (r.id.clone(), r.category.clone(), m))
            })
            .collect();
        Ok(Categoriser { rules })
    }
}

fn is_category(c: &str) -> bool {
    !c.is_empty()
        && c.len() <= 64
        && c.chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
}

#[derive(Clone, Debug)]
enum Matcher {
    Prefix(String),
    Glob(globset::GlobMatcher),
    Regex(regex::Regex),
    Title(String),
}

/// The longest pattern kept (regular expressions are compiled with a size limit too).
const MAX_PATTERN: usize = 500;

impl Matcher {
    fn new(m: &UrlMatch) -> Result<Matcher, String> {
        let text = match m {
            UrlMatch::PathPrefix { prefix: t }
            | UrlMatch::Glob { pattern: t }
            | UrlMatch::Regex { pattern: t }
            | UrlMatch::TitleKeyword { keyword: t } => t,
        };
        if text.trim().is_empty() {
            return Err("empty: say what to look for".into());
        }
        if text.len() > MAX_PATTERN {
            return Err(format!("at most {MAX_PATTERN} characters"));
        }
        Ok(match m {
            UrlMatch::PathPrefix { prefix } => {
                if !prefix.starts_with('/') {
                    return Err("a path prefix starts with / (e.g. /pricing)".into());
                }
                Matcher::Prefix(prefix.to_lowercase())
            }
            UrlMatch::Glob { pattern } => Matcher::Glob(
                globset::GlobBuilder::new(pattern)
                    .case_insensitive(true)
                    .literal_separator(true)
                    .build()
                    .map_err(|e| format!("not a glob: {e}"))?
                    .compile_matcher(),
            ),
            UrlMatch::Regex { pattern } => Matcher::Regex(
                regex::RegexBuilder::new(pattern)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| format!("not a regular expression: {e}"))?,
            ),
            UrlMatch::TitleKeyword { keyword } => Matcher::Title(keyword.to_lowercase()),
        })
    }

    fn matches(&self, path: &str, title: &str) -> bool {
        match self {
            Matcher::Prefix(p) => path.to_lowercase().starts_with(p.as_str()),
            Matcher::Glob(g) => g.is_match(path),
            Matcher::Regex(r) => r.is_match(path),
            Matcher::Title(k) => title.to_lowercase().contains(k.as_str()),
        }
    }
}

/// What a page is: the category and the id of the rule that said so.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Categorised {
    pub category: String,
    pub rule: String,
}

/// Compiled rules.
#[derive(Clone, Debug)]
pub struct Categoriser {
    rules: Vec<(String, String, Matcher)>,
}

/// The path of `url_or_path`: a full URL's path (without query or fragment), or the text
/// itself when it is already a path.
pub fn path_of(url_or_path: &str) -> &str {
    let s = url_or_path.trim();
    let after_scheme = match s.find("://") {
        Some(i) => {
            let rest = &s[i + 3..];
            rest.find('/').map_or("/", |j| &rest[j..])
        }
        None => s,
    };
    let end = after_scheme.find(['?', '#']).unwrap_or(after_scheme.len());
    &after_scheme[..end]
}

impl Categoriser {
    pub fn builtin() -> Categoriser {
        UrlCategories::builtin()
            .compile()
            .unwrap_or(Categoriser { rules: Vec::new() })
    }

    /// The first rule's category for a page (`path` or else `url`, and `title`).
    pub fn categorise(
        &self,
        path: Option<&str>,
        url: Option<&str>,
        title: Option<&str>,
    ) -> Option<Categorised> {
        let path = path.or(url).map(path_of).unwrap_or_default();
        let title = title.unwrap_or_default();
        if path.is_empty() && title.is_empty() {
            return None;
        }
        self.rules
            .iter()
            .find(|(_, _, m)| m.matches(path, title))
            .map(|(id, category, _)| Categorised {
                category: category.clone(),
                rule: id.clone(),
            })
    }

    /// [`Self::categorise`] over an event's properties (`path`, `url`, `title`).
    pub fn of_properties(&self, properties: &serde_json::Value) -> Option<Categorised> {
        let s = |k: &str| properties.get(k).and_then(serde_json::Value::as_str);
        if s("path").is_none() && s("url").is_none() {
            return None;
        }
        self.categorise(s("path"), s("url"), s("title"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_builtin_rules_name_common_pages() {
        let c = Categoriser::builtin();
        let cat = |path: &str, title: &str| {
            c.categorise(Some(path), None, Some(title))
                .map(|x| x.category)
        };
        assert_eq!(cat("/pricing/enterprise", "").as_deref(), Some("pricing"));
        assert_eq!(
            cat("/products/x5-vs-siemens", "").as_deref(),
            Some("competitor_comparison")
        );
        assert_eq!(
            cat("/news/2026", "X5 与西门子参数对比").as_deref(),
            Some("competitor_comparison")
        );
        assert_eq!(
            cat("/files/security-whitepaper-2026.pdf", "").as_deref(),
            Some("whitepaper")
        );
        assert_eq!(
            cat("/cases/suzhou/jinggong", "").as_deref(),
            Some("case_study")
        );
        assert_eq!(cat("/about", "关于我们"), None);
        // A full URL is reduced to its path; query and fragment are ignored.
        assert_eq!(
            c.categorise(
                None,
                Some("https://x.cn/Pricing?utm_source=baidu#top"),
                None
            )
            .map(|x| (x.category, x.rule)),
            Some(("pricing".to_owned(), "pricing".to_owned()))
        );
        assert_eq!(
            c.of_properties(&json!({"url": "https://x.cn/docs/api"}))
                .map(|x| x.category),
            Some("technical_docs".to_owned())
        );
        assert_eq!(
            c.of_properties(&json!({"title": "对比"})),
            None,
            "no page, no category"
        );
    }

    #[test]
    fn the_first_matching_rule_wins_and_says_so() {
        let rules = UrlCategories {
            rules: vec![
                rule(
                    "x5-compare",
                    "competitor_comparison",
                    UrlMatch::Glob {
                        pattern: "/products/*/compare".into(),
                    },
                ),
                rule(
                    "products",
                    "product",
                    UrlMatch::PathPrefix {
                        prefix: "/products".into(),
                    },
                ),
            ],
        };
        let c = rules.compile().unwrap();
        let got = c
            .categorise(Some("/products/x5/compare"), None, None)
            .unwrap();
        assert_eq!(
            (got.category.as_str(), got.rule.as_str()),
            ("competitor_comparison", "x5-compare")
        );
        // `*` stays within one segment.
        let got = c
            .categorise(Some("/products/x5/a/compare"), None, None)
            .unwrap();
        assert_eq!(got.rule, "products");
    }

    #[test]
    fn problems_are_reported_by_pointer() {
        let bad = UrlCategories {
            rules: vec![
                rule(
                    "a",
                    "Pricing Page",
                    UrlMatch::PathPrefix {
                        prefix: "pricing".into(),
                    },
                ),
                rule(
                    "a",
                    "ok",
                    UrlMatch::Regex {
                        pattern: "(unclosed".into(),
                    },
                ),
                rule(
                    "c",
                    "ok",
                    UrlMatch::Glob {
                        pattern: "/{a,b".into(),
                    },
                ),
                rule(
                    "d",
                    "ok",
                    UrlMatch::TitleKeyword {
                        keyword: " ".into(),
                    },
                ),
            ],
        };
        let pointers: Vec<String> = bad.problems().into_iter().map(|(p, _)| p).collect();
        assert_eq!(
            pointers,
            [
                "/rules/0/category",
                "/rules/0/match/prefix",
                "/rules/1/id",
                "/rules/1/match/pattern",
                "/rules/2/match/pattern",
                "/rules/3/match/keyword",
            ]
        );
        assert!(bad.compile().is_err());
        assert!(UrlCategories::builtin().problems().is_empty());
        let parsed: UrlCategories = serde_json::from_value(json!({"rules": [
            {"id": "p", "category": "pricing", "match": {"kind": "path_prefix", "prefix": "/pricing"}}
        ]}))
        .unwrap();
        assert_eq!(
            parsed.rules[0].matcher,
            UrlMatch::PathPrefix {
                prefix: "/pricing".into()
            }
        );
    }
}
