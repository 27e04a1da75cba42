"""The local sandbox fleet: real sshd hosts in network namespaces behind a bastion,
HAProxy in the bastion, moto's AWS API on loopback. Entry points: sandbox.fleet.up(),
describe(), down()."""
