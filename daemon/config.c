typedef int config_placeholder_;
