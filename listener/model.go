package listener

import "github.com/patchbay/patchbay/model"

// modelNode is what of the node's config the run model reads.
func (c *Config) modelNode(fed string) model.Node {
	return model.Node{Name: c.Node, Federation: fed, Region: c.Region}
}

// hostedOf is a listener.yaml service as the run model reads it.
func (c *Config) hostedOf(s ServiceConfig) model.Hosted {
	return model.Hosted{Service: s.Service, Provision: s.Provision}
}
