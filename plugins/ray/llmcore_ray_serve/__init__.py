"""``llmcore serve --replicas N [--ray ADDRESS]``: N engines as Ray actors behind the one HTTP
front end, each request routed to the least-loaded replica or the one holding its prompt's prefix
(docs/ray.md). Installed with the ray plugin; llmcore imports it only when --replicas is given."""
