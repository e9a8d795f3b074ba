//! `kiln token create`: the token alone on stdout, so that
//! `KILN_TOKEN=$(kiln token create --role viewer)` works; a note on stderr.

use crate::client::args::TokenCreateArgs;
use crate::client::error::Error;
use crate::client::{Ctx, print, print_json};
use crate::exit;
use kiln_client::api::call;
use kiln_proto::api::CreateToken;

pub async fn create(ctx: &Ctx, args: &TokenCreateArgs) -> Result<i32, Error> {
    let req = CreateToken {
        role: args.role,
        name: args.name.clone(),
    };
    let raw = ctx.client.call_raw(&call::create_token(&req)).await?;
    if args.json {
        print_json(&raw.json)?;
    } else {
        print(&format!("{}\n", raw.value.token))?;
    }
    let named = match &raw.value.name {
        Some(n) => format!(" `{n}`"),
        None => String::new(),
    };
    eprintln!(
        "created {} token{named}; it is shown only this once, so keep it somewhere safe",
        raw.value.role.as_str()
    );
    Ok(exit::SUCCESS)
}
