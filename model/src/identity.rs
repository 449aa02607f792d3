//! What a lead is known by: the identities events carry (scoring attributes events to leads
//! by them; the contact policy finds a customer's lead by one).

/// Identities an event can carry in its properties, strongest first: a lead found by an
/// earlier one wins, and anonymous leads found by later ones are merged into it.
pub const IDENTITY_KINDS: [&str; 5] = [
    "user_id",
    "external_contact_id",
    "email",
    "phone",
    "anonymous_id",
];
