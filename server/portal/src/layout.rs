//! The portal's look: one HTML frame (header with navigation, language switch and the
//! user), one stylesheet and one small script, served from `/assets/`. The login and token
//! pages of `datakube-auth` use the same frame through [`datakube_auth::web::PageLayout`].

use datakube_auth::util::html_escape;
use datakube_auth::web::{Lang, PageContext, PageLayout, lang_code, tr};

pub const CSS: &str = include_str!("../assets/portal.css");
pub const JS: &str = include_str!("../assets/portal.js");
/// Bumped with the assets so browsers fetch the new ones.
pub const ASSET_VERSION: &str = "2";

/// The portal frame.
pub struct Layout;

impl PageLayout for Layout {
    fn render(&self, ctx: &PageContext, title: &str, body: &str) -> String {
        let lang = ctx.lang;
        let t = |da: &'static str, en: &'static str| tr(lang, da, en);
        let current = |p: &str| {
            let on = if p == "/" {
                ctx.path == "/" || ctx.path.starts_with("/cubes/")
            } else {
                ctx.path == p || ctx.path.starts_with(&format!("{p}/"))
            };
            if on {
                " class=\"current\" aria-current=\"page\""
            } else {
                ""
            }
        };
        let mut nav = String::new();
        if ctx.user.is_some() {
            nav.push_str(&format!(
                "<a href=\"/\"{}>{}</a><a href=\"/tokens\"{}>{}</a>",
                current("/"),
                t("Katalog", "Catalogue"),
                current("/tokens"),
                t("Adgangstokens", "Access tokens")
            ));
            if ctx.admin {
                nav.push_str(&format!(
                    "<a href=\"/admin\"{}>{}</a>",
                    current("/admin"),
                    t("Administration", "Administration")
                ));
            }
        }
        let user = match &ctx.user {
            Some(name) => format!(
                "<span class=\"who\">{}</span><a href=\"/logout\">{}</a>",
                html_escape(name),
                t("Log ud", "Log out")
            ),
            None => format!("<a href=\"/login\">{}</a>", t("Log ind", "Log in")),
        };
        let switch = |l: Lang, label: &str| {
            format!(
                "<a href=\"{}?lang={}\" lang=\"{}\"{}>{}</a>",
                html_escape(&ctx.path),
                lang_code(l),
                lang_code(l),
                if l == lang { " class=\"current\"" } else { "" },
                label
            )
        };
        format!(
            "<!DOCTYPE html><html lang=\"{l}\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title} — datakube</title><link rel=\"stylesheet\" href=\"/assets/portal.css?v={v}\">\
<script src=\"/assets/portal.js?v={v}\" defer></script></head><body>\
<header class=\"site\"><div class=\"bar\"><a class=\"brand\" href=\"/\">datakube</a><nav aria-label=\"{navlabel}\">{nav}</nav>\
<div class=\"user\">{user}<span class=\"lang\">{da} · {en}</span></div></div></header>\
<main><h1>{title}</h1>{body}</main>\
<footer class=\"site\">{footer}</footer></body></html>",
            l = lang_code(lang),
            v = ASSET_VERSION,
            title = html_escape(title),
            navlabel = t("Hovedmenu", "Main menu"),
            da = switch(Lang::Da, "Dansk"),
            en = switch(Lang::En, "English"),
            footer = t(
                "datakube — FLIS-kuber til Excel, Power BI og TARGIT over XMLA.",
                "datakube — FLIS cubes for Excel, Power BI and TARGIT over XMLA."
            ),
        )
    }
}
