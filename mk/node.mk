# The Node face (node/): `make node` builds the addon with cargo and copies it to
# node/channel-messaging.node, after which `npm install ./node` works.
# `napi build` is not used: it always passes --target, so its artifacts would share
# nothing with the workspace's cargo builds (see TOOLCHAIN.md).

# Keep the Makefile's own default goal (`demo`): targets defined here must not become it.
_node_saved_default_goal := $(.DEFAULT_GOAL)

NODE_PROFILE ?= release
NODE_CARGO_TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
NODE_ADDON := node/channel-messaging.node

.PHONY: node demo-node

node:
	$(CARGO) build --locked -p channel-messaging-node $(if $(filter release,$(NODE_PROFILE)),--release,--profile $(NODE_PROFILE))
	cp $(NODE_CARGO_TARGET_DIR)/$(if $(filter dev,$(NODE_PROFILE)),debug,$(NODE_PROFILE))/libchannel_messaging_node.so $(NODE_ADDON)

demo-node: node
	node node/examples/workers.mjs

DEMOS += demo-node

.DEFAULT_GOAL := $(_node_saved_default_goal)
