"""The local test world: a real control plane, the real Pulumi engine and providers, and small
stand-ins for the controllers whose images cannot run here (see docs/real-world.md)."""
