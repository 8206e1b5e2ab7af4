//! The gRPC methods the server serves, read from its services' descriptors, and the metric handles
//! of each. Only these get their own `grpc_service`/`grpc_method` labels; any other path a client
//! sends is counted under `unknown`, so no request can create a series.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prost::Message;

use super::labels::{GrpcCode, GrpcType};

/// Label value of `grpc_service` and `grpc_method` for a path the server does not serve.
pub(crate) const UNKNOWN: &str = "unknown";

/// One served method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Method {
    /// Fully qualified service, e.g. `auth.v1.AuthService`.
    pub(crate) service: String,
    /// Method name, e.g. `Login`.
    pub(crate) method: String,
    /// Streaming shape.
    pub(crate) kind: GrpcType,
}

/// Why the methods could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MethodsError {
    /// A descriptor set does not decode.
    #[error("gRPC descriptors: {0}")]
    Decode(#[from] prost::DecodeError),
    /// A service to serve is in none of the descriptor sets.
    #[error("gRPC descriptors: no service {0}")]
    Missing(String),
}

/// The methods of `services` (fully qualified names), as the descriptor sets describe them.
pub(crate) fn served(
    descriptor_sets: &[&[u8]],
    services: &[&str],
) -> Result<Vec<Method>, MethodsError> {
    let mut methods = Vec::new();
    let mut found = Vec::new();
    for set in descriptor_sets {
        let set = prost_types::FileDescriptorSet::decode(*set)?;
        for file in set.file {
            for service in &file.service {
                let name = format!("{}.{}", file.package(), service.name());
                if !services.contains(&name.as_str()) || found.contains(&name) {
                    continue;
                }
                for m in &service.method {
                    methods.push(Method {
                        service: name.clone(),
                        method: m.name().to_owned(),
                        kind: GrpcType::of(m.client_streaming(), m.server_streaming()),
                    });
                }
                found.push(name);
            }
        }
    }
    if let Some(missing) = services.iter().find(|s| !found.iter().any(|f| f == *s)) {
        return Err(MethodsError::Missing((*missing).to_owned()));
    }
    Ok(methods)
}

/// `{grpc_service, grpc_method, grpc_type}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct GrpcLabels {
    grpc_service: Arc<str>,
    grpc_method: Arc<str>,
    grpc_type: GrpcType,
}

/// `{grpc_service, grpc_method, grpc_type, grpc_code}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct GrpcCodeLabels {
    grpc_service: Arc<str>,
    grpc_method: Arc<str>,
    grpc_type: GrpcType,
    grpc_code: GrpcCode,
}

/// The metric handles of one method (or of all unknown paths), resolved once.
#[derive(Debug)]
pub(crate) struct MethodMetrics {
    labels: GrpcLabels,
    pub(crate) started: Counter,
    pub(crate) handling: Histogram,
    handled_family: Family<GrpcCodeLabels, Counter>,
    /// `handled` per code, created on the first call that ends with it.
    handled: [OnceLock<Counter>; 17],
}

impl MethodMetrics {
    fn new(
        labels: GrpcLabels,
        started: &Family<GrpcLabels, Counter>,
        handled: &Family<GrpcCodeLabels, Counter>,
        handling: &Family<GrpcLabels, Histogram, fn() -> Histogram>,
    ) -> Self {
        Self {
            started: started.get_or_create_owned(&labels),
            handling: handling.get_or_create_owned(&labels),
            handled_family: handled.clone(),
            handled: Default::default(),
            labels,
        }
    }

    /// The `handled` counter of `code`.
    pub(crate) fn handled(&self, code: GrpcCode) -> &Counter {
        self.handled[code.index()].get_or_init(|| {
            let l = &self.labels;
            self.handled_family.get_or_create_owned(&GrpcCodeLabels {
                grpc_service: l.grpc_service.clone(),
                grpc_method: l.grpc_method.clone(),
                grpc_type: l.grpc_type,
                grpc_code: code,
            })
        })
    }
}

/// Every served method's handles by path (`/package.Service/Method`), and one for the rest.
#[derive(Debug)]
pub(crate) struct MethodTable {
    by_path: HashMap<String, Arc<MethodMetrics>>,
    unknown: Arc<MethodMetrics>,
}

impl MethodTable {
    /// Handles for `methods` (their `started` and `handling_seconds` series exist from now on, at
    /// zero) and for unknown paths.
    pub(crate) fn new(
        methods: &[Method],
        started: &Family<GrpcLabels, Counter>,
        handled: &Family<GrpcCodeLabels, Counter>,
        handling: &Family<GrpcLabels, Histogram, fn() -> Histogram>,
    ) -> Self {
        let by_path = methods
            .iter()
            .map(|m| {
                let labels = GrpcLabels {
                    grpc_service: m.service.as_str().into(),
                    grpc_method: m.method.as_str().into(),
                    grpc_type: m.kind,
                };
                let path = format!("/{}/{}", m.service, m.method);
                let metrics = MethodMetrics::new(labels, started, handled, handling);
                (path, Arc::new(metrics))
            })
            .collect();
        let unknown = GrpcLabels {
            grpc_service: UNKNOWN.into(),
            grpc_method: UNKNOWN.into(),
            grpc_type: GrpcType::Unknown,
        };
        Self {
            by_path,
            unknown: Arc::new(MethodMetrics::new(unknown, started, handled, handling)),
        }
    }

    /// The handles for a request path.
    pub(crate) fn lookup(&self, path: &str) -> &Arc<MethodMetrics> {
        self.by_path.get(path).unwrap_or(&self.unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICES: [&str; 3] = [
        "auth.v1.AuthService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ];

    fn methods() -> Vec<Method> {
        served(
            &[
                auth_proto::FILE_DESCRIPTOR_SET,
                tonic_health::pb::FILE_DESCRIPTOR_SET,
                tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            ],
            &SERVICES,
        )
        .unwrap()
    }

    #[test]
    fn methods_come_with_their_streaming_shape() {
        let ms = methods();
        let kind = |s: &str, m: &str| {
            ms.iter()
                .find(|x| x.service == s && x.method == m)
                .map(|x| x.kind)
        };
        assert_eq!(kind("auth.v1.AuthService", "Login"), Some(GrpcType::Unary));
        assert_eq!(
            kind("grpc.health.v1.Health", "Check"),
            Some(GrpcType::Unary)
        );
        assert_eq!(
            kind("grpc.health.v1.Health", "Watch"),
            Some(GrpcType::ServerStream)
        );
        assert_eq!(
            kind(
                "grpc.reflection.v1.ServerReflection",
                "ServerReflectionInfo"
            ),
            Some(GrpcType::BidiStream)
        );
        // Services not asked for (the demo greeter in the same descriptor set) are not served.
        assert!(ms.iter().all(|m| SERVICES.contains(&m.service.as_str())));
    }

    #[test]
    fn a_service_missing_from_the_descriptors_is_an_error() {
        let e = served(&[auth_proto::FILE_DESCRIPTOR_SET], &["auth.v1.NoSuch"]).unwrap_err();
        assert!(e.to_string().contains("auth.v1.NoSuch"), "{e}");
    }

    #[test]
    fn unknown_paths_share_one_entry() {
        let started = Family::default();
        let handled = Family::default();
        let handling: Family<GrpcLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new([1.0]));
        let table = MethodTable::new(&methods(), &started, &handled, &handling);
        let login = table.lookup("/auth.v1.AuthService/Login");
        assert_eq!(&*login.labels.grpc_method, "Login");
        for path in ["/auth.v1.AuthService/Nope", "/x.Y/Login", "/", "Login", ""] {
            assert!(Arc::ptr_eq(table.lookup(path), &table.unknown), "{path}");
        }
        table.lookup("/a/b").started.inc();
        table.lookup("/c/d").started.inc();
        assert_eq!(table.unknown.started.get(), 2);
        assert_eq!(login.started.get(), 0);
    }
}
