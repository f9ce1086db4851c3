/// The decisions of the gateway: sign, verify or skip a message, and the milter actions that
/// follow. Built out in its own module so that it is tested without libmilter.
public enum Gateway {}
