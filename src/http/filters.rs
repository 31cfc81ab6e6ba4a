//! Route matching as the Functions host does it: `/api/<function>`, case-insensitive (the host forwards
//! the client's casing, warp matches exactly), plus the shared state.

use std::sync::Arc;

use warp::Filter;

use crate::broker::Broker;

/// `/api/<name>`, matched case-insensitively.
pub fn function_route(
    name: &'static str,
) -> impl Filter<Extract = (), Error = warp::Rejection> + Clone {
    warp::path::param::<String>()
        .and(warp::path::param::<String>())
        .and(warp::path::end())
        .and_then(move |prefix: String, function: String| async move {
            if prefix.eq_ignore_ascii_case("api") && function.eq_ignore_ascii_case(name) {
                Ok(())
            } else {
                Err(warp::reject::not_found())
            }
        })
        .untuple_one()
}

pub fn with_state(
    broker: Arc<Broker>,
) -> impl Filter<Extract = (Arc<Broker>,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || broker.clone())
}
