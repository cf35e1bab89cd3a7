//! The tenant a call acts for.

use std::fmt;

use secrecy::SecretString;

/// Who a call is made for: the project (tenant), the user, their roles,
/// and optionally the user's own token.
///
/// Backends act for this tenant: a secret stored under one project is not
/// visible to another. Server backends that support it (Barbican) send the
/// user token so the server itself enforces the user's rights; others use
/// the project id to scope their own checks.
///
/// ```
/// use keymgr_core::Context;
/// let ctx = Context::new("project-a", "alice").with_roles(["member"]);
/// assert!(ctx.has_role("member"));
/// ```
#[derive(Clone, Default)]
pub struct Context {
    /// The project (tenant) id.
    pub project_id: String,
    /// The user id.
    pub user_id: String,
    /// The user's role names in the project.
    pub roles: Vec<String>,
    /// The user's token, when the call acts on behalf of a user.
    pub user_token: Option<SecretString>,
}

impl Context {
    /// A context for `user_id` in `project_id`, no roles, no token.
    pub fn new(project_id: impl Into<String>, user_id: impl Into<String>) -> Self {
        Context {
            project_id: project_id.into(),
            user_id: user_id.into(),
            roles: Vec::new(),
            user_token: None,
        }
    }

    /// The same context with these roles.
    pub fn with_roles<I, S>(mut self, roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.roles = roles.into_iter().map(Into::into).collect();
        self
    }

    /// The same context carrying the user's token.
    pub fn with_user_token(mut self, token: impl Into<String>) -> Self {
        self.user_token = Some(SecretString::from(token.into()));
        self
    }

    /// Whether the user has role `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("project_id", &self.project_id)
            .field("user_id", &self.user_id)
            .field("roles", &self.roles)
            .field(
                "user_token",
                &self.user_token.as_ref().map(|_| "[REDACTED]"),
            )
            .finish()
    }
}
