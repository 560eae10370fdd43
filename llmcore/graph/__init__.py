"""The backend-agnostic compute graph: its IR (``ir``), the builder models use (``builder``), rope
settings and angles (``rope``), the Backend contract (``backend``), the lowering device backends
share (``lowering``), where layers go (``placement``) and the scheduler that cuts a graph into
per-backend splits (``scheduler``)."""
