//! The HTTP edge: the route table, wire DTOs, request rules and the mapping of errors to responses.
//! Knows warp; decides nothing about who may have what.

pub mod connections;
pub mod delegations;
pub mod error;
mod error_description;
pub mod filters;
pub mod get_sp_token;
pub mod health;
pub mod reply;
pub mod request;
pub mod server;
pub mod token;
pub mod whoami;

use std::convert::Infallible;
use std::sync::Arc;

use warp::Filter;
use warp::reply::Response;

use crate::broker::Broker;
use crate::http::error::{ApiError, ErrorContext};
use crate::http::filters::{function_route, with_state};
use crate::http::request::request_parts;

pub fn routes(
    broker: Arc<Broker>,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    // The Functions host polls `GET /` for readiness and health: cheap, no side effects.
    let readiness = warp::path::end()
        .and(warp::get().or(warp::head()).unify())
        .map(|| {
            warp::Reply::into_response(warp::reply::json(&serde_json::json!({"status": "ok"})))
        });

    let get_sp_token = function_route(get_sp_token::ROUTE)
        .and(request_parts())
        .and(with_state(broker.clone()))
        .then(get_sp_token::handle);

    let token = function_route(token::ROUTE)
        .and(request_parts())
        .and(with_state(broker.clone()))
        .then(token::handle);

    let whoami = function_route(whoami::ROUTE)
        .and(request_parts())
        .and(with_state(broker.clone()))
        .then(whoami::handle);

    let delegations = delegations::delegation_path()
        .and(request_parts())
        .and(with_state(broker.clone()))
        .then(delegations::handle);

    let health = function_route(health::ROUTE)
        .and(warp::method())
        .and(with_state(broker))
        .then(health::handle);

    readiness
        .or(get_sp_token)
        .unify()
        .or(token)
        .unify()
        .or(whoami)
        .unify()
        .or(delegations)
        .unify()
        .or(health)
        .unify()
        .recover(recover)
        .unify()
}

/// Only warp's own rejections arrive here: an unknown path, or a method `GET /` does not take.
async fn recover(rejection: warp::Rejection) -> Result<Response, Infallible> {
    let err = if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::MethodNotAllowed { allow: "GET" }
    } else {
        ApiError::NotFound
    };
    Ok(err.into_response(&ErrorContext::default()))
}
