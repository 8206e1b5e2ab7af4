//! The parts of Envoy's `CheckRequest` that `Check` reads, as prost messages decoded straight from the
//! received buffer: the path and every header name and value are `Bytes` slices of it (no `String`, no
//! `HashMap` per header), and every other field — peers, metadata, TLS, body — is skipped unread.
//!
//! Field numbers are those of `envoy/service/auth/v3/{external_auth,attribute_context}.proto` and
//! `envoy/config/core/v3/base.proto` (vendored in `proto/third_party/`); the unit tests below decode
//! requests encoded by `envoy-types`, so a mismatch fails them. A `map<string, string>` is, on the
//! wire, a repeated entry message `{key = 1, value = 2}`, which is what [`Header`] decodes.

use bytes::Bytes;

/// `envoy.service.auth.v3.CheckRequest`: only `attributes`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct CheckRequest {
    /// `AttributeContext attributes = 1`.
    #[prost(message, optional, tag = "1")]
    pub(crate) attributes: Option<AttributeContext>,
}

/// `AttributeContext`: only `request`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct AttributeContext {
    /// `Request request = 4`.
    #[prost(message, optional, tag = "4")]
    pub(crate) request: Option<Request>,
}

/// `AttributeContext.Request`: only `http`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Request {
    /// `HttpRequest http = 2`.
    #[prost(message, optional, tag = "2")]
    pub(crate) http: Option<HttpRequest>,
}

/// `AttributeContext.HttpRequest`: the path and the headers, in either of Envoy's two forms.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct HttpRequest {
    /// `map<string, string> headers = 3`: lower-case names, repeated headers joined with a comma.
    #[prost(message, repeated, tag = "3")]
    pub(crate) headers: Vec<Header>,
    /// `string path = 4`: the `:path`, query included.
    #[prost(bytes = "bytes", tag = "4")]
    pub(crate) path: Bytes,
    /// `config.core.v3.HeaderMap header_map = 13`: sent instead of `headers` when Envoy is told to
    /// encode raw header values (`encode_raw_headers`), one entry per header line.
    #[prost(message, optional, tag = "13")]
    pub(crate) header_map: Option<HeaderMap>,
}

/// One entry of the `headers` map.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Header {
    /// The header name.
    #[prost(bytes = "bytes", tag = "1")]
    pub(crate) key: Bytes,
    /// The header value.
    #[prost(bytes = "bytes", tag = "2")]
    pub(crate) value: Bytes,
}

/// `config.core.v3.HeaderMap`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct HeaderMap {
    /// `repeated HeaderValue headers = 1`.
    #[prost(message, repeated, tag = "1")]
    pub(crate) headers: Vec<HeaderValue>,
}

/// `config.core.v3.HeaderValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct HeaderValue {
    /// `string key = 1`.
    #[prost(bytes = "bytes", tag = "1")]
    pub(crate) key: Bytes,
    /// `string value = 2`.
    #[prost(bytes = "bytes", tag = "2")]
    pub(crate) value: Bytes,
    /// `bytes raw_value = 3`: the value when Envoy encodes raw headers.
    #[prost(bytes = "bytes", tag = "3")]
    pub(crate) raw_value: Bytes,
}

impl HttpRequest {
    /// Every header of the request as (name, value), from whichever form Envoy used. Of several
    /// `headers` map entries with one name the last counts, as for a decoded map.
    pub(crate) fn header_pairs(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let map = self.headers.iter().enumerate().filter_map(|(i, h)| {
            let later = self.headers[i + 1..].iter().any(|l| l.key == h.key);
            (!later).then_some((h.key.as_ref(), h.value.as_ref()))
        });
        let raw = self.header_map.iter().flat_map(|m| &m.headers).map(|h| {
            let value = if h.raw_value.is_empty() {
                &h.value
            } else {
                &h.raw_value
            };
            (h.key.as_ref(), value.as_ref())
        });
        map.chain(raw)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use envoy_types::ext_authz::v3::pb as envoy;
    use envoy_types::pb::envoy::config::core::v3 as core;
    use envoy_types::pb::envoy::service::auth::v3 as envoy_auth;
    use envoy_types::pb::envoy::service::auth::v3::attribute_context;
    use prost::Message;

    use super::*;

    fn envoy_request(http: attribute_context::HttpRequest) -> Vec<u8> {
        envoy::CheckRequest {
            attributes: Some(envoy_auth::AttributeContext {
                source: Some(attribute_context::Peer {
                    principal: "spiffe://cluster.local/ns/a/sa/b".into(),
                    ..Default::default()
                }),
                request: Some(attribute_context::Request {
                    time: Some(Default::default()),
                    http: Some(http),
                }),
                context_extensions: HashMap::from([("k".into(), "v".into())]),
                ..Default::default()
            }),
        }
        .encode_to_vec()
    }

    #[test]
    fn decodes_the_path_and_map_headers_envoy_types_encodes() {
        let bytes = envoy_request(attribute_context::HttpRequest {
            id: "1".into(),
            method: "POST".into(),
            path: "/demo.v1.GreeterService/WhoAmI?x=1".into(),
            host: "greeter".into(),
            headers: HashMap::from([
                ("authorization".into(), "Bearer abc".into()),
                ("x-auth-subject".into(), "forged".into()),
            ]),
            body: "ignored".into(),
            ..Default::default()
        });
        let req = CheckRequest::decode(bytes.as_slice()).unwrap();
        let http = req.attributes.unwrap().request.unwrap().http.unwrap();
        assert_eq!(&http.path[..], b"/demo.v1.GreeterService/WhoAmI?x=1");
        let mut pairs: Vec<_> = http.header_pairs().collect();
        pairs.sort();
        assert_eq!(
            pairs,
            vec![
                (&b"authorization"[..], &b"Bearer abc"[..]),
                (&b"x-auth-subject"[..], &b"forged"[..]),
            ]
        );
    }

    #[test]
    fn decodes_raw_header_maps_preferring_raw_values() {
        let bytes = envoy_request(attribute_context::HttpRequest {
            path: "/p".into(),
            header_map: Some(core::HeaderMap {
                headers: vec![
                    core::HeaderValue {
                        key: "authorization".into(),
                        value: String::new(),
                        raw_value: b"Bearer one".to_vec(),
                    },
                    core::HeaderValue {
                        key: "authorization".into(),
                        value: "Bearer two".into(),
                        raw_value: Vec::new(),
                    },
                ],
            }),
            ..Default::default()
        });
        let req = CheckRequest::decode(bytes.as_slice()).unwrap();
        let http = req.attributes.unwrap().request.unwrap().http.unwrap();
        let pairs: Vec<_> = http.header_pairs().collect();
        assert_eq!(
            pairs,
            vec![
                (&b"authorization"[..], &b"Bearer one"[..]),
                (&b"authorization"[..], &b"Bearer two"[..]),
            ]
        );
    }

    #[test]
    fn a_repeated_map_key_keeps_the_last_value_like_a_map() {
        let entry = |k: &str, v: &str| Header {
            key: Bytes::copy_from_slice(k.as_bytes()),
            value: Bytes::copy_from_slice(v.as_bytes()),
        };
        let http = HttpRequest {
            headers: vec![entry("a", "1"), entry("b", "2"), entry("a", "3")],
            ..Default::default()
        };
        let pairs: Vec<_> = http.header_pairs().collect();
        assert_eq!(pairs, vec![(&b"b"[..], &b"2"[..]), (&b"a"[..], &b"3"[..])]);
    }

    #[test]
    fn no_http_attributes_decode_as_none() {
        let bytes = envoy::CheckRequest {
            attributes: Some(envoy_auth::AttributeContext::default()),
        }
        .encode_to_vec();
        let req = CheckRequest::decode(bytes.as_slice()).unwrap();
        assert!(req.attributes.unwrap().request.is_none());
    }
}
