"""Partner-side code: the bank SDK, mock banks and the conformance kit."""
