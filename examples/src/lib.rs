//! Example storage services built on keymgr and luks (Manila, Cinder, Nova, Glance semantics). Not implemented yet.
