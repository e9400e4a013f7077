"""Pure byte → byte transforms. Each changes only what it means to and splices bytes."""
