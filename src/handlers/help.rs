//! `!help [command]`.

use crate::command::{help_for, help_overview};
use crate::context::Ctx;
use crate::reply::Reply;

pub fn help(ctx: &Ctx, topic: Option<&str>) -> Reply {
    let prefix = &ctx.config.chat.prefix;
    match topic {
        // The parser only lets known topics through, so a missing entry is a bug in the table;
        // fall back to the overview rather than answering nothing.
        Some(t) => Reply::ok(help_for(t, prefix).unwrap_or_else(|| help_overview(prefix))),
        None => Reply::ok(help_overview(prefix)),
    }
}
