//! A read whose database connection was ended under it (the cut-off of a
//! clinic move, for an instance that missed the switch's notice; a restore;
//! a server restart) is answered again, once: the second attempt opens a
//! fresh connection, and the pool reads the clinic's placement again when
//! the old one refuses it (`tenancy::pools`), so it lands on the clinic's
//! new server. Only `GET` and `HEAD` are run again: a read changes nothing
//! but its audit event, and a change must never be made twice.

use axum::body::Body;
use axum::extract::Request;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use super::error::ConnectionCut;

/// Runs a read a second time when its answer is marked [`ConnectionCut`].
pub async fn cut_reads_again(request: Request, next: Next) -> Response {
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return next.run(request).await;
    }
    let mut again = Request::new(Body::empty());
    *again.method_mut() = request.method().clone();
    *again.uri_mut() = request.uri().clone();
    *again.version_mut() = request.version();
    *again.headers_mut() = request.headers().clone();
    *again.extensions_mut() = request.extensions().clone();
    let response = next.clone().run(request).await;
    if response.extensions().get::<ConnectionCut>().is_none() {
        return response;
    }
    tracing::info!("a read's connection was cut under it: answered again");
    next.run(again).await
}
