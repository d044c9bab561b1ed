"""`skyloft account ...`: a person's own tools for moving and keeping their account."""
