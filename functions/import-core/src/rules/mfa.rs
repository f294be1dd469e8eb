//! MFA rules beyond the published schema: an `mfa_factors` item must actually hold a factor.
//! The schema's own rules (1–10 items, one known factor each, patterns) live in `schema`.

use super::node::{ArrayNode, Node, ObjectNode};

use super::{code, violation, Members, Path};
use crate::violation::Violation;

/// The factor kinds, for the message; the schema's `MFA_FACTOR` shape is what enforces them.
const FACTOR_KINDS: &str = "totp, phone or email";

/// The published schema has `maxProperties: 1` but no `minProperties`, so `{}` passes it
/// (facts §4.7, INFER), yet the docs say each item holds exactly one of totp/phone/email and
/// Auth0 documents `MFA_FACTORS_FAILED`. A factor with nothing in it would enroll nothing, and
/// most likely marks an export that lost the secret, so we reject it before a job is spent,
/// with `OBJECT_REQUIRED` because a required factor is missing from the item.
pub(crate) fn check_factor_not_empty<'v, N: Node<'v>>(
    record: &Members<'v, N>,
    out: &mut Vec<Violation>,
) {
    let Some(factors) = record.get("mfa_factors").and_then(Node::as_array) else {
        return;
    };
    let root = Path::Root;
    let base = root.key("mfa_factors");
    for (index, factor) in factors.items().enumerate() {
        if factor.as_object().is_some_and(ObjectNode::is_empty) {
            out.push(violation(
                code::OBJECT_REQUIRED,
                &base.index(index),
                format_args!(
                    "Missing required property: each MFA factor must hold exactly one of {FACTOR_KINDS}; \
                     remove the empty item"
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testkit::{assert_clean, assert_finding, with};
    use super::*;

    #[test]
    fn empty_factor_is_rejected() {
        assert_clean(&with(
            "mfa_factors",
            json!([{ "phone": { "value": "+15551234567" } }]),
        ));
        let user = with(
            "mfa_factors",
            json!([{ "phone": { "value": "+15551234567" } }, {}]),
        );
        assert_finding(&user, code::OBJECT_REQUIRED, "mfa_factors[1]");
    }
}
